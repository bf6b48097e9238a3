#!/usr/bin/env -S deno run -A
// The ferry command line: `deno run -A cli.ts <command> [options]`. The commands are listed in
// cli/commands.ts (one module each under cli/); this file only dispatches, prints help, and turns
// every error into one `ferry: <message>` line on stderr and a documented exit code (cli/errors.ts),
// never a stack trace (FERRY_DEBUG=1 adds the stack of an unexpected error).

import { flag, parse } from "./cli/args.ts";
import { COMMANDS, findCommand } from "./cli/commands.ts";
import { describe, EXIT, exitCodeOf, expected, OutputClosed, UsageError } from "./cli/errors.ts";
import { commandHelp, mainHelp } from "./cli/help.ts";
import { print, printError } from "./cli/output.ts";

function debugging(): boolean {
  try {
    return Boolean(Deno.env.get("FERRY_DEBUG"));
  } catch {
    return false; // no --allow-env
  }
}

/** Runs the command line `argv` and returns the exit code; errors are printed, never thrown. */
export async function main(argv: string[]): Promise<number> {
  try {
    const [name, ...rest] = argv;
    if (name === undefined) throw new UsageError("no command given (see: cli.ts --help)");
    if (name === "-h" || name === "--help" || name === "help") {
      const topic = rest[0] === undefined ? undefined : findCommand(rest[0]);
      if (rest[0] !== undefined && topic === undefined) throw new UsageError(`unknown command '${rest[0]}'`);
      if (topic !== undefined && "passThrough" in topic) return await topic.run(["--help"]);
      print(topic === undefined ? mainHelp() : commandHelp(topic));
      return EXIT.ok;
    }
    const command = findCommand(name);
    if (command === undefined) {
      const known = COMMANDS.map((c) => c.name).join(", ");
      throw new UsageError(`unknown command '${name}' (commands: ${known}; see: cli.ts --help)`);
    }
    if ("passThrough" in command) return await command.run(rest);
    const args = parse(name, rest, command.options);
    if (flag(args, "help")) {
      print(commandHelp(command));
      return EXIT.ok;
    }
    return await command.run(args);
  } catch (error) {
    if (error instanceof OutputClosed) return EXIT.ok;
    printError(describe(error));
    if (!expected(error) && debugging()) console.error(error);
    return exitCodeOf(error);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
