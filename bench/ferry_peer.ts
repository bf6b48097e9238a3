// One side of a ferry benchmark, in its own process. Usage:
//   ferry_peer.ts <role> <prefix> <channel> <codec> <size> <count> <warm> [openExtra JSON]
// Senders (send-sync | send-async | send-batch | send-zerocopy) open an async handle, as the README
// tells users to for async sends, wait for "go" on stdin, send `warm` then `count` messages (one
// by one, `await send` one by one, 16 per sendManySync, or loan/commit), then one empty message.
// Receivers (recv-sync | recv-into | recv-async | recv-batch | recv-zerocopy) receive until the empty message,
// touching each value, and time from their `warm`-th message on. recv-ack-sync / recv-ack-async
// answer the driver's ack round trips (`warm` + `count` of them) with recvSync or for await.
// Every peer prints "ready" once open and ends with one JSON line:
// { count, firstMs, lastMs } (wall milliseconds, comparable between processes).

import { wallMs } from "./clock.ts";
import { Channel, type OpenOptions } from "../mod.ts";
import { rawPayload, SMALL_OBJECT } from "./types.ts";

const [role, prefix, name, codec, sizeArg, countArg, warmArg, extraArg] = Deno.args;
const count = Number(countArg);
const warm = Number(warmArg);
const size = Number(sizeArg);
const sending = role.startsWith("send");
const options: OpenOptions<unknown> = {
  prefix,
  codec: codec === "raw" || codec === "msgpack-plain" ? codec : "msgpack",
  timeout: 60_000,
  ...(sending ? { mode: "async" as const } : {}),
  ...(role === "recv-zerocopy" ? { zeroCopy: true } : {}),
  ...(extraArg ? JSON.parse(extraArg) : {}),
};
const ch = Channel.open<unknown>(name, options);
console.log("ready");

let sink = 0;
/** What an application does first with a message: look at its value. */
function touch(data: unknown): void {
  sink += data instanceof Uint8Array ? data.length : (data as { id: number }).id;
}
const END = codec === "raw" ? new Uint8Array(0) : null;
const isEnd = (data: unknown) => data === null || (data instanceof Uint8Array && data.length === 0);

let seen = 0; // messages received, warm-up included
let firstMs = 0;
/** Counts one message; the clock starts at the first message after the warm-up. */
function arrived(): void {
  if (seen++ === warm) firstMs = wallMs();
}

async function go(): Promise<void> {
  const reader = Deno.stdin.readable.getReader();
  await reader.read(); // "go"
  reader.releaseLock();
}

const total = warm + count;
if (role === "recv-ack-sync") {
  // Answers the driver's round trips: autoRelease releases each message in recvSync.
  for (let i = 0; i < total; i++) touch(ch.recvSync().data);
} else if (role === "recv-ack-async") {
  let i = 0;
  for await (const msg of ch) {
    touch(msg.data);
    if (++i === total) break;
  }
} else if (role === "recv-sync") {
  for (;;) {
    const data = ch.recvSync().data;
    if (isEnd(data)) break;
    arrived();
    touch(data);
  }
} else if (role === "recv-into") {
  // A copy the receiver owns, in one buffer reused for every message (valid until the next).
  const into = new Uint8Array(size);
  for (;;) {
    const data = ch.recvSync({ into }).data;
    if (isEnd(data)) break;
    arrived();
    touch(data);
  }
} else if (role === "recv-async") {
  for await (const msg of ch) {
    const data = msg.data;
    if (isEnd(data)) break;
    arrived();
    touch(data);
  }
} else if (role === "recv-zerocopy") {
  // The payload is read where it lies, one byte per 4 KiB page, then the slot is released.
  for (;;) {
    const msg = ch.recvSync();
    const view = msg.view;
    if (view.length === 0) {
      msg.release();
      break;
    }
    arrived();
    for (let at = 0; at < view.length; at += 4096) sink += view[at];
    msg.release();
  }
} else if (role === "recv-batch") {
  let end = false;
  while (!end) {
    for (const msg of ch.recvManySync(256)) {
      const data = msg.data;
      if (isEnd(data)) {
        end = true;
        break;
      }
      arrived();
      touch(data);
    }
  }
} else if (role === "send-sync") {
  const value = codec === "raw" ? rawPayload(size) : SMALL_OBJECT;
  await go();
  for (let i = 0; i < total; i++) ch.sendSync(value);
  ch.sendSync(END);
} else if (role === "send-async") {
  const value = codec === "raw" ? rawPayload(size) : SMALL_OBJECT;
  await go();
  for (let i = 0; i < total; i++) await ch.send(value);
  await ch.send(END);
} else if (role === "send-batch") {
  const value = codec === "raw" ? rawPayload(size) : SMALL_OBJECT;
  const batch = Array.from({ length: 16 }, () => value);
  await go();
  for (let i = 0; i < total; i += batch.length) {
    ch.sendManySync(total - i >= batch.length ? batch : batch.slice(0, total - i));
  }
  ch.sendSync(END);
} else if (role === "send-zerocopy") {
  // The producer's bytes go into the loaned slot once (one memcpy, what a producer whose data
  // is in a JS buffer pays; one that reads a file or socket into the loan pays nothing more),
  // and are committed without another copy.
  const value = rawPayload(size);
  await go();
  for (let i = 0; i < total; i++) {
    const slot = ch.loanSync(size);
    slot.set(value);
    ch.commit(slot);
  }
  ch.sendSync(new Uint8Array(0));
} else {
  throw new Error(`ferry bench peer: unknown role ${role}`);
}
const lastMs = wallMs();
console.log(JSON.stringify({ count: Math.max(0, seen - warm), firstMs, lastMs, sink: sink > -1 }));
ch.close();
