// What a command is. cli/commands.ts lists them; a new command is one module exporting a Command
// and one line in that table.

import type { OptionSpec, ParsedArgs } from "./args.ts";

/** A command whose arguments cli.ts parses and whose help it writes from these fields. */
export interface Command {
  name: string;
  /** The synopsis after `cli.ts`, e.g. "recv <channel> [--count N]". */
  usage: string;
  /** One line for the overview (lower case, no full stop). */
  summary: string;
  /** Help text between the usage line and the options. */
  about: string;
  options: Record<string, OptionSpec>;
  /** Runs the command and returns its exit code; throws for errors (cli.ts prints them). */
  run(args: ParsedArgs): Promise<number>;
}

/** A command that takes its arguments, --help included, unparsed (bench has its own parser). */
export interface PassThroughCommand {
  name: string;
  usage: string;
  summary: string;
  passThrough: true;
  run(argv: string[]): Promise<number>;
}

export type AnyCommand = Command | PassThroughCommand;
