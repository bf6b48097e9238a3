// Finds and loads the core library, once per process. FERRY_LIB overrides the path.

import { fileURLToPath } from "node:url";
import { symbols } from "./symbols.ts";

export { symbols };

const defaultPath = new URL("../core/target/release/libferry_core.so", import.meta.url);

/**
 * FERRY_LIB when this process may read it; only `--allow-ffi` is required to use ferry, so without
 * env permission the variable is not asked for (asking would throw NotCapable or prompt).
 */
function fromEnvironment(): string | undefined {
  const allowed = Deno.permissions.querySync({ name: "env", variable: "FERRY_LIB" }).state === "granted";
  const value = allowed ? Deno.env.get("FERRY_LIB") : undefined;
  return value && value.length > 0 ? value : undefined;
}

function libraryPath(): string {
  return fromEnvironment() ?? fileURLToPath(defaultPath);
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
