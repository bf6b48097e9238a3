// The receiving side of a benchmark, in its own process. Usage:
//   peer.ts <workload> <prefix> <channel> <count>
// Prints "ready" once the channel is open, then one JSON line with what it measured.

import { Channel } from "../mod.ts";
import { core } from "../ffi/lib.ts";

const [workload, prefix, name, countArg] = Deno.args;
const count = Number(countArg);
const clock = core().ferry_clock_ns32;

const ch = Channel.open<Uint8Array>(name, { prefix, codec: "raw", timeout: 30_000 });
console.log("ready");

let received = 0;
let first = 0;
if (workload === "sync") {
  ch.recvSync();
  first = clock();
  received = 1;
  while (received < count) {
    ch.recvSync();
    received++;
  }
} else {
  for await (const _msg of ch) {
    if (received === 0) first = clock();
    if (++received === count) break;
  }
}
const elapsedNs = (clock() - first) >>> 0;
console.log(JSON.stringify({ received, elapsedNs }));
ch.close();
