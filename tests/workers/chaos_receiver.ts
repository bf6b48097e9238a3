// A chaos receiver: receives, verifies every byte of each payload, logs GOT (with the redelivered
// and torn flags) and only then releases, so an acknowledged message is always in some log.
// Usage: chaos_receiver.ts <prefix> <name> <receiverId> <recv|iter|sync|holder|batch> <log> <t0> <seed>
//   recv: await recv(), release; iter: for await (released after the body); sync: recvSync();
//   holder: holds 1 to 3 messages at a time for up to 20 ms before releasing them;
//   batch: recvManySync or await recvMany of 1 to 16 (runs claimed at once), then releases each.
// Prints "ready" once open. stdin: "pause", "resume", "grab" (take one message and keep it held,
// printing "holding <senderId> <seq> <redelivered>" or "holding none"), "exit" (release what is
// held, close, print "done <received>", exit 0).

import { Channel, type Message, TimeoutError } from "../../mod.ts";
import {
  checkPayload,
  F_ORDER,
  F_REDELIVERED,
  F_TORN,
  LogWriter,
  readCommands,
  Rec,
  rng,
  yieldToLoop,
} from "./chaos_common.ts";

const [prefix, name, idText, kind, logPath, t0Text, seedText] = Deno.args;
const receiverId = Number(idText);
const random = rng(Number(seedText));
const log = new LogWriter(logPath, Number(t0Text));
const channel = Channel.open<Uint8Array>(name, {
  prefix,
  codec: "raw",
  autoRelease: kind === "iter",
  timeout: 20_000,
  // Settings a worker that creates the channel gives it (later openers read the creator's).
  capacity: Number(Deno.env.get("FERRY_CHAOS_CAPACITY") ?? 16),
  maxMessageSize: Number(Deno.env.get("FERRY_CHAOS_MAX_MESSAGE") ?? 1 << 20),
  ...(Deno.env.get("FERRY_CHAOS_MEMORY") ? { memory: Number(Deno.env.get("FERRY_CHAOS_MEMORY")) } : {}),
});

let paused = false;
let exiting = false;
let grabs = 0;
let wake: (() => void) | undefined;
function leave() {
  exiting = true;
  // A for-await loop parked on an empty channel ends when the channel closes.
  if (kind === "iter") channel.close();
}
readCommands((line) => {
  if (line === "pause") paused = true;
  if (line === "resume") paused = false;
  if (line === "grab") grabs++;
  if (line === "exit") leave();
  wake?.();
}).then(() => {
  leave();
  wake?.();
});
const command = () => new Promise<void>((resolve) => wake = resolve);

let received = 0;
const held: Message<Uint8Array>[] = [];
const pinned: Message<Uint8Array>[] = [];

/** Per sender process, the last lane sequence number received unmarked: FIFO per sender. */
const lastSeq = new Map<number, number>();

function take(msg: Message<Uint8Array>): { senderId: number; seq: number } {
  const c = checkPayload(msg.bytes);
  let order = 0;
  if (!msg.redelivered) {
    const last = lastSeq.get(msg.sender);
    if (last !== undefined && msg.seq <= last) {
      order = F_ORDER;
      console.error(`receiver ${receiverId}: pid ${msg.sender} seq ${msg.seq} after ${last}`);
    }
    lastSeq.set(msg.sender, msg.seq);
  }
  const flags = (msg.redelivered ? F_REDELIVERED : 0) | (c.ok ? 0 : F_TORN) | order;
  log.write(Rec.GOT, 0, flags, c.senderId, c.seq);
  if (!c.ok) console.error(`receiver ${receiverId}: torn payload (${c.why}) from pid ${msg.sender}`);
  received++;
  return c;
}

function releaseHeld() {
  for (const msg of held.splice(0)) msg.release();
}

async function grab() {
  grabs--;
  let msg;
  try {
    msg = await channel.recv({ timeout: 2_000 });
  } catch (e) {
    if (!(e instanceof TimeoutError)) throw e;
    console.log("holding none");
    return;
  }
  const { senderId, seq } = take(msg);
  pinned.push(msg);
  console.log(`holding ${senderId} ${seq} ${msg.redelivered}`);
}

// The soak measures resident memory: a full collection every half second keeps the heap at what
// is live, so growth means something kept, not a collector that has not run yet.
const gc = (globalThis as { gc?: () => void }).gc;
if (gc) setInterval(gc, 500);

console.log("ready");
let holdLimit = 1 + Math.floor(random() * 3);
let heldSince = 0;
let lastYield = performance.now();
while (!exiting) {
  if (grabs > 0) {
    await grab();
    continue;
  }
  if (paused || pinned.length > 0) {
    releaseHeld();
    await command();
    continue;
  }
  if (kind === "iter") {
    for await (const msg of channel) {
      take(msg);
      if (paused || exiting || grabs > 0) break;
    }
  } else if (kind === "batch") {
    const max = 1 + Math.floor(random() * 16);
    let got: Message<Uint8Array>[] = [];
    try {
      got = random() < 0.5
        ? channel.recvManySync(max, { timeout: 50 })
        : await channel.recvMany(max, { timeout: 100 });
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
    }
    for (const msg of got) take(msg);
    for (const msg of got) msg.release();
    if (performance.now() - lastYield > 10) {
      await yieldToLoop();
      lastYield = performance.now();
    }
  } else if (kind === "sync") {
    try {
      const msg = channel.recvSync({ timeout: 50 });
      take(msg);
      msg.release();
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
    }
    if (performance.now() - lastYield > 10) {
      await yieldToLoop();
      lastYield = performance.now();
    }
  } else {
    let msg;
    try {
      msg = await channel.recv({ timeout: kind === "holder" && held.length > 0 ? 20 : 100 });
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
      releaseHeld();
      continue;
    }
    take(msg);
    if (kind !== "holder") {
      msg.release();
      continue;
    }
    if (held.length === 0) heldSince = performance.now();
    held.push(msg);
    if (held.length >= holdLimit || performance.now() - heldSince > 20) {
      releaseHeld();
      holdLimit = 1 + Math.floor(random() * 3);
    }
  }
}
releaseHeld();
for (const msg of pinned.splice(0)) msg.release();
log.close();
console.log(`done ${received}`);
channel.close();
Deno.exit(0);
