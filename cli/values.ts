// Message values from the command line: an argument, or each line of stdin.

/** Text as a message value: JSON when it parses, else the text itself as a string. */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function* stdinLines(): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, end);
      pending = pending.slice(end + 1);
    }
  }
  if (pending) yield pending;
}

/** Each non-empty line of stdin as a value. */
export async function* stdinValues(): AsyncGenerator<unknown> {
  for await (const line of stdinLines()) {
    const text = line.endsWith("\r") ? line.slice(0, -1) : line;
    if (text !== "") yield parseValue(text);
  }
}
