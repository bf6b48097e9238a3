// Message values from the command line: an argument, or each line of stdin.

import { textLines } from "./lines.ts";

/** Text as a message value: JSON when it parses, else the text itself as a string. */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Each non-empty line of stdin as a value. */
export async function* stdinValues(): AsyncGenerator<unknown> {
  for await (const line of textLines(Deno.stdin.readable)) {
    if (line !== "") yield parseValue(line);
  }
}
