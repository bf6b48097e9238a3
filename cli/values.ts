// Message values from the command line: an argument, or each line of stdin. A value is JSON, or
// with --string the text itself; text that is not JSON is a usage error that says where it stops
// being JSON, never silently a string (a typo in '{"id": 1' must not send the typo).

import { UsageError } from "./errors.ts";
import { textLines } from "./lines.ts";

/** `text` as a message value: a string when `asString`, else its JSON (UsageError naming `what`). */
function parseValue(text: string, asString: boolean, what: () => string): unknown {
  if (asString) return text;
  try {
    return JSON.parse(text);
  } catch (error) {
    const problem = locateJsonError(text);
    const detail = problem === undefined
      ? (error as Error).message // JSON.parse saw what this scanner did not: its own words
      : `${problem.reason} at column ${problem.index + 1}`;
    throw new UsageError(`${what()} is not JSON (${detail}); --string sends text as a string`);
  }
}

/** The argument as a value; `command` names it in a usage error. */
export function argumentValue(command: string, text: string, asString: boolean): unknown {
  return parseValue(text, asString, () => `${command}: ${quote(text)}`);
}

/** Each non-empty line of stdin as a value, with its line number for error messages. */
export async function* stdinValues(
  command: string,
  asString: boolean,
): AsyncGenerator<{ line: number; value: unknown }> {
  let line = 0;
  for await (const text of textLines(Deno.stdin.readable)) {
    line++;
    if (text === "") continue;
    yield {
      line,
      value: parseValue(text, asString, () => `${command}: line ${line} of stdin, ${quote(text)},`),
    };
  }
}

function quote(text: string): string {
  return `'${text.length > 40 ? `${text.slice(0, 37)}...` : text}'`;
}

/**
 * Where `text` stops being JSON (RFC 8259), and why. Called only after JSON.parse refused it:
 * V8's messages name a position for some mistakes and not others ("Unexpected token 'h'").
 */
function locateJsonError(text: string): { index: number; reason: string } | undefined {
  let i = 0;
  class Stop {
    constructor(readonly reason: string, readonly index = i) {}
  }
  const unexpected = () => new Stop(i >= text.length ? "unexpected end" : `unexpected '${text[i]}'`);
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const expect = (c: string, what: string) => {
    ws();
    if (text[i] !== c) {
      throw i >= text.length ? unexpected() : new Stop(`expected ${what}, found '${text[i]}'`);
    }
    i++;
  };
  const string = () => {
    const start = i++;
    for (;;) {
      if (i >= text.length) throw new Stop("unterminated string", start);
      const c = text[i];
      if (c === '"') return void i++;
      if (c < " ") throw new Stop("control character in a string (escape it)");
      if (c === "\\") {
        i++;
        if (text[i] === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) i += 5;
        else if (text[i] !== undefined && '"\\/bfnrt'.includes(text[i])) i++;
        else throw new Stop("invalid escape in a string");
      } else i++;
    }
  };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') {
          throw i >= text.length
            ? unexpected()
            : new Stop(`expected a "quoted" property name, found '${text[i]}'`);
        }
        string();
        expect(":", "':'");
        value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return void i++;
        else throw i >= text.length ? unexpected() : new Stop(`expected ',' or '}', found '${text[i]}'`);
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return void i++;
        else throw i >= text.length ? unexpected() : new Stop(`expected ',' or ']', found '${text[i]}'`);
      }
    }
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) {
      NUMBER.lastIndex = i;
      const match = NUMBER.exec(text);
      if (match === null) throw new Stop("invalid number");
      i += match[0].length;
      return;
    }
    for (const literal of ["true", "false", "null"]) {
      if (text.startsWith(literal, i)) return void (i += literal.length);
    }
    throw unexpected();
  };
  try {
    value();
    ws();
    if (i < text.length) throw new Stop(`unexpected '${text[i]}' after the value`);
    return undefined;
  } catch (stop) {
    if (stop instanceof Stop) return { index: stop.index, reason: stop.reason };
    throw stop;
  }
}
