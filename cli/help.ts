// Help texts: the overview (`cli.ts --help`) and each command's (`cli.ts <command> --help`), both
// written from the command table so a new command documents itself.

import type { Command } from "./command.ts";
import { COMMANDS } from "./commands.ts";
import { EXIT_CODES } from "./errors.ts";

export function commandHelp(c: Command): string {
  const optionLines = Object.entries(c.options).map(([option, o]) => {
    const short = o.short ? `-${o.short}, ` : "";
    const left = `  ${short}--${option}${o.type === "string" ? ` ${o.arg ?? "<value>"}` : ""}`;
    return `${left.padEnd(30)}${o.help}`;
  });
  return `Usage: deno run -A cli.ts ${c.usage} [options]

${c.summary[0].toUpperCase()}${c.summary.slice(1)}.

${c.about}

Options:
${optionLines.join("\n")}

${EXIT_CODES}`;
}

/** Width of the usage column in the overview. */
const USAGE_COLUMN = 30;

export function mainHelp(): string {
  // A usage too long for the column puts its summary on the next line, so the two never run
  // together (group's did: "...<json>group memberships").
  const lines = COMMANDS.map((c) =>
    c.usage.length <= USAGE_COLUMN - 2
      ? `  ${c.usage.padEnd(USAGE_COLUMN)}${c.summary}`
      : `  ${c.usage}\n  ${" ".repeat(USAGE_COLUMN)}${c.summary}`
  );
  return `ferry: message passing between processes through shared memory (/dev/shm/<prefix>.<name>)

Usage: deno run -A cli.ts <command> [options]

Commands:
${lines.join("\n")}

Every command but bench takes --prefix <prefix> (the namespace; default: $FERRY_PREFIX, else
"ferry"), --json (machine-readable output) and -h, --help; all but bench, bridge, call, services,
pub and sub also take --permissions and --trust (which segments they accept). Channel names and prefixes: 1 to 100 of letters, digits, . _ - ! (no . in a prefix)
Run \`deno run -A cli.ts <command> --help\` for a command's options.

${EXIT_CODES}`;
}
