// Exit codes and how an error becomes one line on stderr. Every user error ends here: one
// `ferry: <message>` line and a documented code, never a stack trace (FERRY_DEBUG=1 adds the stack
// of an unexpected error, for bug reports).

import { ChannelNotFoundError, FerryError, InvalidNameError, InvalidOptionError } from "../mod.ts";

/** The process's exit codes; EXIT_CODES documents them in every help text. */
export const EXIT = { ok: 0, runtime: 1, usage: 2, notFound: 3, interrupted: 130 } as const;

export const EXIT_CODES = `Exit codes:
  0    success
  1    runtime error: timeout, channel full, receiver died (ack), message expired or too large,
       channel in use (rm), group send to no members or with a member that failed,
       not a ferry channel, no permission, I/O
  2    usage error: unknown command or option, bad option value, a value that is not JSON,
       invalid channel name or prefix
  3    channel not found
  130  recv interrupted by Ctrl-C / SIGTERM (tail stops on them with 0)`;

/** A mistake in the command line itself: exit 2. */
export class UsageError extends Error {}

/** stdout was closed by its reader (`| head`): stop quietly. */
export class OutputClosed extends Error {}

/** A usage error that points at the command's help. */
export function usageError(command: string, what: string): UsageError {
  return new UsageError(`${command}: ${what} (see: cli.ts ${command} --help)`);
}

export function exitCodeOf(error: unknown): number {
  if (
    error instanceof UsageError || error instanceof InvalidNameError || error instanceof InvalidOptionError ||
    isParseArgsError(error)
  ) {
    return EXIT.usage;
  }
  if (error instanceof ChannelNotFoundError) return EXIT.notFound;
  return EXIT.runtime;
}

/** node:util parseArgs's own errors, from a command that parses its arguments itself (bench). */
function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_");
}

/** The error as the one line after `ferry: `. */
export function describe(error: unknown): string {
  let text: string;
  if (error instanceof FerryError || error instanceof UsageError) text = error.message;
  else if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    text = `${error.message} (run with -A, or --allow-ffi --allow-read --allow-write --allow-env)`;
  } else if (error instanceof Error) text = error.message.replace(/^ferry: /, "");
  else text = String(error);
  return text.replace(/\s*\n\s*/g, " ");
}

/** An error the user can act on from its message alone; anything else may be a bug in ferry. */
export function expected(error: unknown): boolean {
  return error instanceof FerryError || error instanceof UsageError || isParseArgsError(error);
}
