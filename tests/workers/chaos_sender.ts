// A chaos sender: sends self-describing payloads (see chaos_common.ts) of mixed sizes until told
// to stop, logging BEGIN before each send and END with its outcome after it.
// Usage: chaos_sender.ts <prefix> <name> <senderId> <ack|async> <send|sync|try> <log> <t0> <seed> <window>
// Prints "ready" once the channel is open. stdin: "pause", "resume", "stop" (finish the sends in
// flight, print "done <json>", close, exit 0).

import { Channel, ChannelFullError } from "../../mod.ts";
import {
  F_ACK,
  LogWriter,
  makePayload,
  Outcome,
  outcomeOf,
  pickSize,
  readCommands,
  Rec,
  rng,
  yieldToLoop,
} from "./chaos_common.ts";

const [prefix, name, idText, mode, api, logPath, t0Text, seedText, windowText] = Deno.args;
const senderId = Number(idText);
const window = Math.max(1, Number(windowText));
const random = rng(Number(seedText));
const ack = mode === "ack";
const flags = ack ? F_ACK : 0;
const log = new LogWriter(logPath, Number(t0Text));
const channel = Channel.open<Uint8Array>(name, {
  prefix,
  codec: "raw",
  mode: ack ? "ack" : "async",
  slots: ack ? window : 16,
  timeout: 20_000,
  // Settings a worker that creates the channel gives it (later openers read the creator's).
  capacity: Number(Deno.env.get("FERRY_CHAOS_CAPACITY") ?? 16),
  maxMessageSize: Number(Deno.env.get("FERRY_CHAOS_MAX_MESSAGE") ?? 1 << 20),
  ...(Deno.env.get("FERRY_CHAOS_MEMORY") ? { memory: Number(Deno.env.get("FERRY_CHAOS_MEMORY")) } : {}),
  expiry: 0,
});

let paused = false;
let stopping = false;
let wake: (() => void) | undefined;
readCommands((line) => {
  if (line === "pause") paused = true;
  if (line === "resume") paused = false;
  if (line === "stop") stopping = true;
  wake?.();
}).then(() => {
  stopping = true;
  wake?.();
});
const command = () => new Promise<void>((resolve) => wake = resolve);

const counts = { sent: 0, ok: 0, peerDied: 0, other: 0 };
const outstanding = new Set<Promise<void>>();

function settled(seq: number, code: number, error?: unknown) {
  log.write(Rec.END, code, flags, senderId, seq);
  if (code === Outcome.OK) counts.ok++;
  else if (code === Outcome.PeerDied) counts.peerDied++;
  else {
    counts.other++;
    console.error(`sender ${senderId} seq ${seq}: ${(error as Error)?.stack ?? error}`);
  }
}

function track(seq: number, promise: Promise<void>) {
  const p = promise.then(
    () => settled(seq, Outcome.OK),
    (e) => settled(seq, outcomeOf(e), e),
  ).finally(() => outstanding.delete(p));
  outstanding.add(p);
}

// The soak measures resident memory: a full collection every half second keeps the heap at what
// is live, so growth means something kept, not a collector that has not run yet.
const gc = (globalThis as { gc?: () => void }).gc;
if (gc) setInterval(gc, 500);

console.log("ready");
let lastYield = performance.now();
for (let seq = 0; !stopping; seq++) {
  while (paused && !stopping) await command();
  if (stopping) break;
  const payload = makePayload(senderId, seq, pickSize(random, channel.maxMessageSize));
  log.write(Rec.BEGIN, 0, flags, senderId, seq);
  counts.sent++;
  if (api === "sync") {
    try {
      channel.sendSync(payload);
      settled(seq, Outcome.OK);
    } catch (e) {
      settled(seq, outcomeOf(e), e);
    }
    if (performance.now() - lastYield > 10) {
      await yieldToLoop();
      lastYield = performance.now();
    }
  } else if (api === "try") {
    for (;;) {
      try {
        const acked = channel.trySend(payload);
        if (acked) track(seq, acked);
        else settled(seq, Outcome.OK);
        break;
      } catch (e) {
        if (!(e instanceof ChannelFullError)) {
          settled(seq, outcomeOf(e), e);
          break;
        }
        // No room: what a trySend user does, come back later (nothing was written).
        await (outstanding.size > 0 ? Promise.race(outstanding) : yieldToLoop());
      }
    }
    if (outstanding.size >= window) await Promise.race(outstanding);
    else if (performance.now() - lastYield > 10) {
      await yieldToLoop();
      lastYield = performance.now();
    }
  } else {
    track(seq, channel.send(payload));
    if (outstanding.size >= window) await Promise.race(outstanding);
  }
}
await Promise.all(outstanding);
log.close();
console.log(`done ${JSON.stringify(counts)}`);
channel.close();
Deno.exit(0);
