// Run by tests/memory.test.ts inside a private mount namespace whose /dev/shm is a 1 MiB tmpfs:
// a channel is created there (its fixed part fits), then sends need more pages than are left.
// Prints one JSON line of what happened; any SIGBUS would kill it first.

import { Channel } from "../../mod.ts";

const out: Record<string, unknown> = {};
const outcome = (f: () => void) => {
  try {
    f();
    return "sent";
  } catch (error) {
    return (error as Error).name;
  }
};
const ch = Channel.open<Uint8Array>("nospace", { mode: "async", codec: "raw" });
const rx = Channel.open<Uint8Array>("nospace", { mode: "async", codec: "raw" });
const big = new Uint8Array(600 * 1024).fill(7);
out.first = outcome(() => ch.trySend(big));
out.second = outcome(() => ch.trySend(big.fill(8)));
out.depthAfterRefusal = ch.stat().depth;
const got = rx.tryRecv();
out.received = got && got.bytes.length === big.length && got.bytes.every((b) => b === 7) ? "intact" : "torn";
out.small = outcome(() => ch.trySend(new Uint8Array(64)));
rx.tryRecv();
// /dev/shm is full again, but the slot that held the first message is free: its pages are given
// back for this one.
out.third = outcome(() => ch.trySend(big.fill(9)));
out.bytes = ch.stat().bytes;
ch.close();
rx.close();
Channel.unlink("nospace");
console.log(JSON.stringify(out));
