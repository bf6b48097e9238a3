// Finds and loads the core library, once per process. FERRY_LIB overrides the path.

import { symbols } from "./symbols.ts";

export { symbols };

const defaultPath = new URL("../core/target/release/libferry_core.so", import.meta.url);

function libraryPath(): string {
  const fromEnv = Deno.env.get("FERRY_LIB");
  return fromEnv && fromEnv.length > 0 ? fromEnv : defaultPath.pathname;
}

function load(): Deno.DynamicLibrary<typeof symbols> {
  const path = libraryPath();
  try {
    return Deno.dlopen(path, symbols);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(
      `ferry: cannot load the core library at ${path} (${why}). ` +
        "Build it with `deno task build` (needs Rust), or point FERRY_LIB at a built libferry_core.so.",
    );
  }
}

let loaded: Deno.DynamicLibrary<typeof symbols>["symbols"] | undefined;

/** The core's symbols; loads the library on first use. */
export function core(): Deno.DynamicLibrary<typeof symbols>["symbols"] {
  return loaded ??= load().symbols;
}
