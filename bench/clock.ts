// The benchmark's clock: CLOCK_MONOTONIC nanoseconds (low 32 bits) from the core, the same clock in
// every process and cheap enough to time every message (one FFI fast call). It is a testing export
// (core/src/ffi/testing.rs), absent from a release build, so the benchmark builds the core once more
// with `--features testing` into core/target/testing and takes the clock from there. That build has
// no LTO (quick to make): the channels being measured still come from the release build.

import { fileURLToPath } from "node:url";
import { testingCore } from "../ffi/testing.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const TARGET_DIR = `${ROOT}core/target/testing`;
const CLOCK_LIB = `${TARGET_DIR}/release/libferry_core.so`;

/** Builds the library the clock comes from unless it is there (the clock never changes). */
export async function ensureClock(): Promise<void> {
  try {
    await Deno.stat(CLOCK_LIB);
    return;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const { success } = await new Deno.Command("cargo", {
    args: [
      "build",
      "--release",
      "--quiet",
      "--features",
      "testing",
      "--target-dir",
      TARGET_DIR,
      "--manifest-path",
      `${ROOT}core/Cargo.toml`,
    ],
    env: { CARGO_PROFILE_RELEASE_LTO: "false", CARGO_PROFILE_RELEASE_CODEGEN_UNITS: "16" },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!success) {
    throw new Error("benchmark clock: `cargo build --release --features testing` in core/ failed");
  }
}

/** The u32 nanosecond clock (differences exact while under 4.29 s); `ensureClock` must have run. */
export function nsClock(): () => number {
  return testingCore(CLOCK_LIB).ferry_clock_ns32;
}
