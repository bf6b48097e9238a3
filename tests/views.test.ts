// Views over shared memory (loans and zero-copy messages) never outlive their mapping or their slot:
// safe TypeScript cannot crash the process or write into another sender's message. The misuse runs
// in a child process (tests/workers/view_misuse.ts), whose exit status is the first assertion:
// before views were detached, each case died of SIGSEGV (exit 139).

import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { Channel } from "../mod.ts";
import { checkPayload, patternPayload, Scope, STEP_TIMEOUT_MS } from "./helpers.ts";

const WORKER = fileURLToPath(new URL("./workers/view_misuse.ts", import.meta.url));
const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Runs one misuse case to its end; asserts it exited normally and returns its JSON report. */
async function misuse(s: Scope, name: string, which: string, denoFlags: string[] = []) {
  const { code, signal, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...denoFlags, WORKER, s.prefix, name, which],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(STEP_TIMEOUT_MS), // hang guard only
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.deepEqual(
    { code, signal },
    { code: 0, signal: null },
    `${which} did not exit normally (139 is SIGSEGV):\n${text(stderr).slice(-3000)}`,
  );
  const lines = text(stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

Deno.test("a zero-copy message's view kept past close() reads nothing, and its accessors say why", async () => {
  await using s = new Scope();
  const tx = s.open("zc", { mode: "async", codec: "raw" });
  tx.trySend(patternPayload(1, 64 * 1024));
  const report = await misuse(s, "zc", "view-after-close");
  assert.deepEqual(report, {
    before: 64 * 1024,
    after: 0,
    read: 0,
    view: "ChannelClosed",
    bytes: "ChannelClosed",
    release: "no error",
  });
  // The message was handed back, not lost: the next receiver gets it whole, marked redelivered.
  const rx = s.open("zc", { mode: "async", codec: "raw" });
  const msg = rx.tryRecv()!;
  assert.deepEqual([checkPayload(msg.bytes), msg.redelivered], [1, true]);
});

Deno.test("a loan view kept past close() takes no writes, and cannot be committed", async () => {
  await using s = new Scope();
  const rx = s.open("loan", { mode: "async", codec: "raw" });
  const report = await misuse(s, "loan", "loan-after-close");
  assert.deepEqual(report, {
    before: 4096,
    after: 0,
    fill: "TypeError", // "Cannot perform %TypedArray%.prototype.fill on a detached ArrayBuffer"
    read: 0,
    commit: "ChannelClosed",
    unloan: "ChannelClosed",
  });
  assert.equal(rx.tryRecv(), undefined);
  assert.equal(rx.stat().participants.length, 1, "the closed loaner left");
});

Deno.test("a loan view outliving its dropped channel keeps the mapping; dropping it too frees the slot", async () => {
  await using s = new Scope();
  const report = await misuse(s, "gc", "loan-after-gc", ["--v8-flags=--expose-gc"]);
  assert.deepEqual(report, { pinned: true, fill: "no error", wrote: 7 * 4096 + 7, slotBack: true });
});

Deno.test("views whose buffers the program transferred away cannot crash it after close()", async () => {
  await using s = new Scope();
  const tx = s.open("moved", { mode: "async", codec: "raw" });
  tx.trySend(new Uint8Array(200).fill(1));
  const report = await misuse(s, "moved", "transferred");
  // The segment's addresses hold private zeroed memory now: reads see zeros, writes stay private.
  assert.deepEqual(report, { movedLength: 200, read: 0, loanedRead: 9 * 4096 + 9 });
  // The message it held is redelivered intact, and nothing it wrote reached the shared segment.
  tx.trySend(new Uint8Array(8).fill(2));
  const rx = s.open("moved", { mode: "async", codec: "raw" });
  const again = rx.tryRecv()!;
  assert.ok(again.redelivered);
  assert.deepEqual(new Set(again.bytes), new Set([1]));
  assert.deepEqual([...rx.tryRecv()!.bytes], [2, 2, 2, 2, 2, 2, 2, 2]);
  assert.equal(rx.tryRecv(), undefined);
});

Deno.test("close() detaches the views of every zero-copy receive path, and recvSync gives views", async () => {
  await using s = new Scope();
  const tx = s.open("paths", { mode: "async", codec: "raw", capacity: 16 });
  for (let seq = 0; seq < 7; seq++) tx.trySend(patternPayload(seq, 256));
  const report = await misuse(s, "paths", "every-path");
  const paths = ["recv", "tryRecv", "recvSync", "tryRecvMany", "recvMany", "recvManySync", "forAwait"];
  assert.deepEqual(report.noView, []);
  assert.equal(report.held, 7, "every zero-copy receive holds its message until release");
  assert.deepEqual(report.before, Object.fromEntries(paths.map((p) => [p, 256])));
  assert.deepEqual(report.after, Object.fromEntries(paths.map((p) => [p, 0])));
  // All seven were handed back on close.
  const rx = s.open("paths", { mode: "async", codec: "raw" });
  const again = rx.tryRecvMany(16);
  assert.deepEqual(again.map((m) => checkPayload(m.bytes)).sort(), [0, 1, 2, 3, 4, 5, 6]);
  assert.ok(again.every((m) => m.redelivered));
});

Deno.test("recvSync on a zeroCopy channel reads in place and holds the message until release", async () => {
  await using s = new Scope();
  const rx = s.open("sync", { mode: "async", codec: "raw", zeroCopy: true });
  const sender = await s.spawn("peer.ts", "sync", { mode: "async" });
  assert.equal((await sender.ask("trySend", { n: 1 })).sent, 1);
  const msg = rx.recvSync({ timeout: 20_000 });
  const view = msg.view; // a copying recvSync threw NotZeroCopy here
  assert.ok(view.length > 0);
  assert.deepEqual(view, msg.bytes);
  assert.equal(rx.stat().inFlight, 1, "held, not auto-released");
  msg.release();
  assert.equal(view.length, 0, "detached at release");
  assert.equal(rx.stat().inFlight, 0);
});

Deno.test("a loan view kept across close() never writes into another sender's message", async () => {
  await using s = new Scope();
  const loaner = await s.spawn("view_misuse.ts", "one", "stale-loan");
  await loaner.expectLine("closed");
  // The loaner's slot is the channel's only one: this message lands where its loan was.
  const b = s.open("one", { mode: "async", codec: "raw" });
  b.trySend(new Uint8Array([1, 1, 1, 1]));
  const report = JSON.parse(await loaner.line("its report")); // written after the stale view was used
  const c = s.open("one", { mode: "async", codec: "raw" });
  assert.deepEqual(c.tryRecv()!.bytes, new Uint8Array([1, 1, 1, 1]), "the message was torn by a stale view");
  assert.deepEqual(report, { length: 0, fill: "TypeError", parked: "ChannelClosed" });
  assert.equal((await loaner.status).code, 0);
  assert.equal(Channel.stat("one", { prefix: s.prefix }).depth, 0);
});
