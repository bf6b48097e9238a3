// Finds and loads the core library, once per process. FERRY_LIB overrides the path.

import { fileURLToPath } from "node:url";
import { symbols } from "./symbols.ts";

export { symbols };

/** Where `cargo build --release` in this checkout's `core/` puts the library, when ferry is local. */
function builtPath(): string | undefined {
  const url = new URL("../core/target/release/libferry_core.so", import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : undefined;
}

/**
 * FERRY_LIB when this process may read it; only `--allow-ffi` is required to use ferry, so without
 * env permission the variable is not asked for (asking would throw NotCapable or prompt).
 */
function fromEnvironment(): string | undefined {
  const allowed = Deno.permissions.querySync({ name: "env", variable: "FERRY_LIB" }).state === "granted";
  const value = allowed ? Deno.env.get("FERRY_LIB") : undefined;
  return value && value.length > 0 ? value : undefined;
}

function load(): Deno.DynamicLibrary<typeof symbols> {
  const fromEnv = fromEnvironment();
  const path = fromEnv ?? builtPath();
  const howTo = "build it with `deno task build` in ferry's checkout (needs Rust: cargo build --release " +
    "in core/), or set FERRY_LIB to the path of a built libferry_core.so (and allow reading it: " +
    "--allow-env=FERRY_LIB)";
  if (path === undefined) {
    throw new Error(
      `ferry: the core library is not next to this copy of ferry (${import.meta.url}): ${howTo}`,
    );
  }
  try {
    return Deno.dlopen(path, symbols);
  } catch (e) {
    // Deno's message repeats its own prefix ("Could not open library: Could not open library: ..."):
    // keep only the system's reason.
    const why = (e instanceof Error ? e.message : String(e)).replace(/^(Could not open library: )+/, "");
    const where = fromEnv ? `FERRY_LIB=${path}` : path;
    throw new Error(`ferry: cannot load the core library ${where}: ${why}. To fix: ${howTo}.`);
  }
}

let loaded: Deno.DynamicLibrary<typeof symbols>["symbols"] | undefined;

/** The core's symbols; loads the library on first use. */
export function core(): Deno.DynamicLibrary<typeof symbols>["symbols"] {
  return loaded ??= load().symbols;
}
