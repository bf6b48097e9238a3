// The ferry driver: TypeScript to TypeScript through ferry channels, between real processes. The
// driver process opens the channel (a handle in the README's default ack mode for round trips)
// and, for round trips, is the sender; every other side is a ferry_peer.ts process.

import { Channel } from "../mod.ts";
import { Packr } from "msgpackr";
import { now } from "./clock.ts";
import { Peer } from "./proc.ts";
import { latency, rawPayload, type Result, SMALL_OBJECT, type Workload } from "./types.ts";

const PEER = new URL("./ferry_peer.ts", import.meta.url);
const prefix = `bench${Deno.pid}`;

interface PeerReport {
  count: number;
  firstMs: number;
  lastMs: number;
}

function payloadBytes(w: Workload): number {
  if (w.codec === "raw") return w.size;
  // The standalone encoding's length: payload bytes count the object, not the shape ids.
  return new Packr({ moreTypes: true }).pack(SMALL_OBJECT).length;
}

const ROLES: Record<string, [sender: string, receiver: string]> = {
  "throughput": ["send-sync", "recv-sync"],
  "throughput-2x2": ["send-sync", "recv-sync"],
  "throughput-promise": ["send-async", "recv-async"],
  "throughput-into": ["send-sync", "recv-into"],
  "throughput-batch": ["send-batch", "recv-batch"],
  "throughput-zerocopy": ["send-zerocopy", "recv-zerocopy"],
};

export async function runFerry(w: Workload): Promise<Result> {
  const name = `${w.kind}-${w.codec}-${w.size}-${Math.random().toString(36).slice(2, 7)}`;
  const ch = Channel.open<unknown>(name, {
    prefix,
    codec: w.codec,
    capacity: 64,
    maxMessageSize: Math.max(w.size, 4096),
    timeout: 60_000,
    ...w.openExtra,
  });
  const peers: Peer[] = [];
  const spawn = (role: string) => {
    const extra = w.openExtra ? [JSON.stringify(w.openExtra)] : [];
    const args = [role, prefix, name, w.codec, String(w.size), String(w.count), String(w.warm), ...extra];
    const p = new Peer(PEER, args);
    peers.push(p);
    return p;
  };
  const bytes = payloadBytes(w);
  try {
    if (w.kind.startsWith("ack-")) {
      const sync = w.kind !== "ack-async";
      const receiver = spawn(sync ? "recv-ack-sync" : "recv-ack-async");
      await receiver.expect("ready");
      const value = w.codec === "raw" ? rawPayload(w.size) : SMALL_OBJECT;
      // Warm-up and the mean: whole batches of round trips, no stamp inside (see clock.ts).
      const half = Math.ceil(w.count / 2);
      let meanMs = 0;
      if (sync) {
        for (let i = 0; i < w.warm; i++) ch.sendSync(value);
        const t0 = now();
        for (let i = 0; i < half; i++) ch.sendSync(value);
        meanMs = (now() - t0) / half;
      } else {
        for (let i = 0; i < w.warm; i++) await ch.send(value);
        const t0 = now();
        for (let i = 0; i < half; i++) await ch.send(value);
        meanMs = (now() - t0) / half;
      }
      // Percentiles: one chained stamp per round trip.
      const rest = w.count - half;
      const samples = new Float64Array(rest);
      let prev = now();
      if (sync) {
        for (let i = 0; i < rest; i++) {
          ch.sendSync(value);
          const t = now();
          samples[i] = t - prev;
          prev = t;
        }
      } else {
        for (let i = 0; i < rest; i++) {
          await ch.send(value);
          const t = now();
          samples[i] = t - prev;
          prev = t;
        }
      }
      await receiver.json<PeerReport>();
      return {
        msgsPerSec: 1000 / meanMs,
        mbPerSec: bytes / meanMs / 1000,
        ...latency(samples),
        meanUs: meanMs * 1000,
      };
    }
    // Throughput: senders and receivers each in their own process, started together.
    const pairs = w.kind === "throughput-2x2" ? 2 : 1;
    const [sendRole, recvRole] = ROLES[w.kind];
    const receivers = Array.from({ length: pairs }, () => spawn(recvRole));
    const senders = Array.from({ length: pairs }, () => spawn(sendRole));
    for (const p of [...receivers, ...senders]) await p.expect("ready");
    for (const s of senders) await s.say("go");
    const reports = await Promise.all(receivers.map((r) => r.json<PeerReport>()));
    await Promise.all(senders.map((s) => s.json<PeerReport>()));
    const received = reports.reduce((a, r) => a + r.count, 0);
    // 1x1: exactly `count` after the warm-up. 2x2: each receiver skips its own first `warm`.
    const expected = w.count * pairs;
    if (received !== expected) throw new Error(`ferry bench lost messages: ${received}/${expected}`);
    // From the first timed receipt to the last, over every receiver (wall clock, shared).
    const start = Math.min(...reports.map((r) => r.firstMs));
    const seconds = (Math.max(...reports.map((r) => r.lastMs)) - start) / 1000;
    return { msgsPerSec: received / seconds, mbPerSec: (received * bytes) / seconds / 1e6 };
  } finally {
    await Promise.all(peers.map((p) => p.stop()));
    ch.close();
    Channel.unlink(name, { prefix });
  }
}

/** Removes what the bench's namespace leaves besides its channels: the msgpack structure store. */
export function cleanUpFerry(): void {
  try {
    Deno.removeSync(`/dev/shm/${prefix}~structures`);
  } catch {
    // no msgpack row ran
  }
}
