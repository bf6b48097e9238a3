// One side of a ferry benchmark, in its own process. Usage:
//   ferry_peer.ts <role> <prefix> <channel> <codec> <size> <count>
// role: recv-sync | recv-async | recv-batch (receive `count` messages, touching each one's data; with count 0,
//       until an empty message arrives) or send-sync / send-batch (send `count` messages in async
//       mode, one by one or 32 per sendMany, then
//       one empty message when `count` is followed by "end").
// Prints "ready" once the channel is open and, for senders, waits for "go" on stdin; ends with
// one JSON line: { count, firstNs, lastNs } on the u32 nanosecond clock.

import { nsClock } from "./clock.ts";
import { Channel } from "../mod.ts";
import { rawPayload, SMALL_OBJECT } from "./types.ts";

const [role, prefix, name, codec, sizeArg, countArg, endArg] = Deno.args;
const count = Number(countArg);
const clock = nsClock();
const ch = Channel.open<unknown>(name, {
  prefix,
  codec: codec === "raw" ? "raw" : "msgpack",
  timeout: 60_000,
});
console.log("ready");

let firstNs = 0;
let sink = 0;
/** What an application does first with a message: look at its value. */
function touch(data: unknown): void {
  sink += data instanceof Uint8Array ? data.length : (data as { id: number }).id;
}

const END = codec === "raw" ? new Uint8Array(0) : null;
const isEnd = (data: unknown) => data === null || (data instanceof Uint8Array && data.length === 0);
let received = 0;

if (role === "recv-sync" && count === 0) {
  for (;;) {
    const data = ch.recvSync().data;
    if (isEnd(data)) break;
    if (received++ === 0) firstNs = clock();
    touch(data);
  }
} else if (role === "recv-sync") {
  touch(ch.recvSync().data);
  firstNs = clock();
  for (received = 1; received < count; received++) touch(ch.recvSync().data);
} else if (role === "recv-async") {
  let i = 0;
  for await (const msg of ch) {
    if (i === 0) firstNs = clock();
    touch(msg.data);
    if (++i === count) break;
  }
  received = i;
} else if (role === "recv-batch") {
  for (;;) {
    const msgs = ch.recvManySync(256);
    let end = false;
    for (const msg of msgs) {
      const data = msg.data;
      if (isEnd(data)) {
        end = true;
        break;
      }
      if (received++ === 0) firstNs = clock();
      touch(data);
    }
    if (end) break;
  }
} else if (role === "send-batch") {
  const value = codec === "raw" ? rawPayload(Number(sizeArg)) : SMALL_OBJECT;
  const batch = Array.from({ length: 16 }, () => value);
  const reader = Deno.stdin.readable.getReader();
  await reader.read(); // "go"
  reader.releaseLock();
  firstNs = clock();
  for (let i = 0; i < count; i += batch.length) ch.sendManySync(batch.slice(0, Math.min(16, count - i)));
  if (endArg === "end") ch.sendSync(END, { mode: "async" });
  received = count;
} else if (role === "send-sync") {
  const value = codec === "raw" ? rawPayload(Number(sizeArg)) : SMALL_OBJECT;
  const reader = Deno.stdin.readable.getReader();
  await reader.read(); // "go"
  reader.releaseLock();
  firstNs = clock();
  for (let i = 0; i < count; i++) ch.sendSync(value, { mode: "async" });
  if (endArg === "end") ch.sendSync(END, { mode: "async" });
  received = count;
}
const lastNs = clock();
console.log(JSON.stringify({ count: received, firstNs, lastNs, sink: sink > -1 }));
ch.close();
