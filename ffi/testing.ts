// The exports only a core built with the `testing` cargo feature has (core/src/ffi/testing.rs):
// hooks that tests and the benchmark call. They are not in ./symbols.ts, every symbol of which a
// release build must export (dlopen fails on a missing one). The test task builds such a core
// (with fault injection too) and names it in FERRY_FAULT_LIB; the benchmark builds its own.

import { symbols } from "./symbols.ts";

/** The testing hooks, one entry per function, one line per parameter. */
export const testingSymbols = {
  // CLOCK_MONOTONIC nanoseconds, low 32 bits: the same clock in every process, cheap enough to time
  // every message of a benchmark (differences are exact while under 4.29 s).
  ferry_clock_ns32: { parameters: [], result: "u32" },
  // An add that stops early, for tests that need a writer to "die" at a precise point.
  ferry_group_debug_add: {
    parameters: [
      "pointer", // GroupTable *g (opened by the same library)
      "buffer", // const u8 *group
      "u32", // group_len
      "buffer", // const u8 *channel
      "u32", // channel_len
      "u64", // expiry_ms
      "u32", // lifetime: LIFETIME_EXPIRY or LIFETIME_PROCESS (./status.ts)
      "u32", // stop: 1 after claiming, 2 published unmerged, 3 held and forgotten (AddStop)
    ],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** `stop` of `ferry_group_debug_add` (core/src/group: `AddStop`). */
export const AddStop = { CLAIMED: 1, PUBLISHED_UNMERGED: 2, HELD_FORGOTTEN: 3 } as const;

const loaded = new Map<string, Deno.DynamicLibrary<typeof testingSymbols & typeof symbols>["symbols"]>();

/**
 * The whole core plus its testing hooks, from the library at `path` (built with `--features testing`).
 * A pointer one library returned is passed only to that library's functions: a table the hooks act
 * on is opened through the same object.
 */
export function testingCore(
  path: string,
): Deno.DynamicLibrary<typeof testingSymbols & typeof symbols>["symbols"] {
  let lib = loaded.get(path);
  if (lib === undefined) {
    lib = Deno.dlopen(path, { ...symbols, ...testingSymbols }).symbols;
    loaded.set(path, lib);
  }
  return lib;
}
