// The native ceiling: core/target/release/ferry_bench (core/src/bin/ferry_bench.rs) drives the Rust
// core between real processes through the same engine calls the C ABI makes for Deno, so the gap
// to ferry's own rows is the cost of the Deno layer. This module runs it and parses its one line.
//
// The native ceiling has no codec: a msgpack row moves the same number of bytes natively as the
// encoded SMALL_OBJECT (with ferry's msgpackr options), as raw bytes with nothing encoded or
// decoded. ack-async is ack-sync natively (native code has only the blocking calls).

import { fileURLToPath } from "node:url";
import { Packr } from "msgpackr";
import { type Result, SMALL_OBJECT, type Workload } from "./types.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BINARY = `${ROOT}core/target/release/ferry_bench`;
/** A run that has not printed its result by then is killed. */
const RUN_TIMEOUT_MS = 180_000;

async function ensureBuilt(): Promise<void> {
  try {
    await Deno.stat(BINARY);
    return;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const { success } = await new Deno.Command("cargo", {
    args: ["build", "--release", "--quiet", "--manifest-path", `${ROOT}core/Cargo.toml`],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error("native benchmark: `cargo build --release` in core/ failed");
}

/** Payload bytes of a native row: raw size, or the encoded length of SMALL_OBJECT for msgpack. */
function payloadSize(w: Workload): number {
  return w.codec === "raw" ? w.size : new Packr({ moreTypes: true }).pack(SMALL_OBJECT).length;
}

/** Runs one workload with the Rust core alone. */
export async function runNative(w: Workload): Promise<Result> {
  await ensureBuilt();
  const kind = w.kind === "ack-async" ? "ack-sync" : w.kind;
  const child = new Deno.Command(BINARY, {
    args: [kind, String(payloadSize(w)), String(w.count)],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let exited = false;
  const timer = setTimeout(() => {
    if (!exited) child.kill("SIGKILL");
  }, RUN_TIMEOUT_MS);
  try {
    const { success, stdout } = await child.output();
    exited = true;
    const lines = new TextDecoder().decode(stdout).trim().split("\n");
    if (!success) throw new Error(`native benchmark: ferry_bench ${kind} failed (${lines.join(" ")})`);
    return JSON.parse(lines[lines.length - 1]) as Result;
  } finally {
    clearTimeout(timer);
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
    }
  }
}
