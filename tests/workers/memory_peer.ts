// A raw-codec channel participant for the memory tests, driven over stdin (one JSON command per
// line, one JSON reply per line). Usage: memory_peer.ts <prefix> <name> <open options as JSON>
//   {"op":"send","sizes":[..]}     -> {sent, error, message}: trySend a patternPayload of each size
//   {"op":"loan","sizes":[..]}     -> {sent, error}: loan each size, fill it, commit
//   {"op":"recv","n":n,"view":b}   -> {received, sizes, bad}: receives n (checking every byte) and
//                                     releases each; view: read the zero-copy view, not a copy
//   {"op":"stat"}                  -> {bytes, memory, depth}
//   {"op":"park"}                  -> {parked: true} at once; the peer then waits in `recv` (parked,
//                                     as an idle receiver is) for one message
//   {"op":"parked"}                -> {received, sizes, bad}: the end of that wait
// Sizes under 12 bytes are sent as that many zero bytes (patternPayload needs 12).

import { Channel } from "../../mod.ts";
import { checkPayload, patternPayload, stdinLines } from "../helpers.ts";

const [prefix, name, optionsJson = "{}"] = Deno.args;
const options = JSON.parse(optionsJson);
const channel = Channel.open<Uint8Array>(name, { ...options, prefix, codec: "raw" });
let seq = 0;
/** The `recv` a "park" started, until "parked" collects it. */
let parked: Promise<object> | undefined;

/** A verifiable payload of `size` bytes: the pattern for its whole words, then a tail of seq's low byte. */
function payload(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  const whole = size - (size % 4);
  if (whole >= 12) bytes.set(patternPayload(seq, whole));
  bytes.fill(seq & 0xff, whole);
  seq++;
  return bytes;
}

function check(bytes: Uint8Array): boolean {
  const whole = bytes.byteLength - (bytes.byteLength % 4);
  try {
    const s = whole >= 12 ? checkPayload(bytes.subarray(0, whole)) : -1;
    return s < 0 || bytes.subarray(whole).every((b) => b === (s & 0xff));
  } catch {
    return false;
  }
}

function run(command: Record<string, unknown>): object | Promise<object> {
  switch (command.op) {
    case "send": {
      let sent = 0;
      for (const size of command.sizes as number[]) {
        try {
          channel.trySend(payload(size), { mode: "async" });
        } catch (error) {
          return { sent, error: (error as Error).name, message: (error as Error).message };
        }
        sent++;
      }
      return { sent, error: null };
    }
    case "loan": {
      let sent = 0;
      for (const size of command.sizes as number[]) {
        try {
          const view = channel.loan(size);
          view.set(payload(size));
          channel.commit(view, { mode: "async" });
        } catch (error) {
          return { sent, error: (error as Error).name, message: (error as Error).message };
        }
        sent++;
      }
      return { sent, error: null };
    }
    case "recv": {
      const sizes: number[] = [];
      let bad = 0;
      for (let i = 0; i < (command.n as number); i++) {
        const message = channel.tryRecv();
        if (message === undefined) break;
        const bytes = command.view ? message.view : message.bytes;
        sizes.push(bytes.byteLength);
        if (!check(bytes)) bad++;
        message.release();
      }
      return { received: sizes.length, sizes, bad };
    }
    case "park": {
      parked = channel.recv({ timeout: 60_000 }).then((message) => {
        const ok = check(message.bytes);
        return { received: 1, sizes: [message.bytes.byteLength], bad: ok ? 0 : 1 };
      });
      return { parked: true };
    }
    case "parked": {
      const done = parked ?? Promise.reject(new Error("parked without a park"));
      parked = undefined;
      return done;
    }
    case "stat": {
      const s = channel.stat();
      return { bytes: s.bytes, memory: s.memory, depth: s.depth };
    }
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

console.log("ready");
for await (const line of stdinLines()) {
  let reply: object;
  try {
    reply = await run(JSON.parse(line));
  } catch (error) {
    reply = { error: (error as Error).name, message: (error as Error).message };
  }
  console.log(JSON.stringify(reply));
}
