// Per-channel capacity by pattern: `channelCapacity: { "http.request": 200, "ws.*": 20, [re]: 5 }`.
// A string key is a glob (`*` any run of characters, `?` one); a RegExp (or, as an object key, its
// "/source/flags" text, which is what `{ [re]: n }` turns it into) is matched as such. The first
// match in insertion order wins.

import { InvalidOptionError } from "./errors.ts";

/**
 * Capacities by channel name (OpenOptions.channelCapacity): glob strings (`*`, `?`) or RegExps,
 * as an object, a Map or entries; the first match in insertion order wins.
 */
export type CapacityPatterns =
  | Record<string, number>
  | Map<string | RegExp, number>
  | [string | RegExp, number][];

const REGEX_TEXT = /^\/(.+)\/([dgimsuvy]*)$/;

function toMatcher(pattern: string | RegExp): RegExp {
  if (pattern instanceof RegExp) return pattern;
  const literal = REGEX_TEXT.exec(pattern);
  if (literal) return new RegExp(literal[1], literal[2].replace(/[gy]/g, ""));
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/** The capacity the first matching pattern gives `name`, or undefined when none matches. */
export function capacityFor(name: string, patterns: CapacityPatterns | undefined): number | undefined {
  if (patterns === undefined) return undefined;
  const entries = patterns instanceof Map
    ? [...patterns.entries()]
    : Array.isArray(patterns)
    ? patterns
    : Object.entries(patterns);
  for (const [pattern, capacity] of entries) {
    const re = toMatcher(pattern);
    re.lastIndex = 0;
    if (re.test(name)) {
      if (!Number.isInteger(capacity) || capacity < 1) {
        throw new InvalidOptionError(`channelCapacity for ${String(pattern)} must be a positive integer`);
      }
      return capacity;
    }
  }
  return undefined;
}
