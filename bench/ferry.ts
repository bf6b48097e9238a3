// The ferry driver: TypeScript to TypeScript through ferry channels, between real processes.

import { ensureClock, nsClock } from "./clock.ts";
import { Channel } from "../mod.ts";
import { Packr } from "msgpackr";
import { Peer } from "./proc.ts";
import { latency, rawPayload, type Result, SMALL_OBJECT, type Workload } from "./types.ts";

const PEER = new URL("./ferry_peer.ts", import.meta.url);
const prefix = `bench${Deno.pid}`;

interface PeerReport {
  count: number;
  firstNs: number;
  lastNs: number;
}

function payloadBytes(w: Workload): number {
  return w.codec === "raw" ? w.size : new Packr({ moreTypes: true }).pack(SMALL_OBJECT).length;
}

function openChannel(name: string, w: Workload) {
  return Channel.open<unknown>(name, {
    prefix,
    codec: w.codec,
    capacity: 64,
    maxMessageSize: Math.max(w.size, 4096),
    timeout: 60_000,
  });
}

export async function runFerry(w: Workload): Promise<Result> {
  await ensureClock();
  const name = `${w.kind}-${w.codec}-${w.size}-${Math.random().toString(36).slice(2, 7)}`;
  const ch = openChannel(name, w);
  const peers: Peer[] = [];
  const spawn = (...args: string[]) => {
    const p = new Peer(PEER, [args[0], prefix, name, w.codec, String(w.size), ...args.slice(1)]);
    peers.push(p);
    return p;
  };
  const bytes = payloadBytes(w);
  try {
    if (w.kind === "ack-sync" || w.kind === "ack-async") {
      const receiver = spawn(w.kind === "ack-sync" ? "recv-sync" : "recv-async", String(w.count));
      await receiver.expect("ready");
      const value = w.codec === "raw" ? rawPayload(w.size) : SMALL_OBJECT;
      const clock = nsClock();
      const samples = new Float64Array(w.count);
      if (w.kind === "ack-sync") {
        for (let i = 0; i < w.count; i++) {
          const t0 = clock();
          ch.sendSync(value, { mode: "ack" });
          samples[i] = (clock() - t0) >>> 0;
        }
      } else {
        for (let i = 0; i < w.count; i++) {
          const t0 = clock();
          await ch.send(value, { mode: "ack" });
          samples[i] = (clock() - t0) >>> 0;
        }
      }
      await receiver.json<PeerReport>();
      const total = samples.reduce((a, b) => a + b, 0) / 1e9;
      return { msgsPerSec: w.count / total, mbPerSec: (w.count * bytes) / total / 1e6, ...latency(samples) };
    }
    // Throughput: senders and receivers each in their own process, started together.
    const pairs = w.kind === "throughput-2x2" ? 2 : 1;
    const batched = w.kind === "throughput-batch";
    const receivers = Array.from({ length: pairs }, () => spawn(batched ? "recv-batch" : "recv-sync", "0"));
    const senders = Array.from(
      { length: pairs },
      () => spawn(batched ? "send-batch" : "send-sync", String(w.count), "end"),
    );
    for (const p of [...receivers, ...senders]) await p.expect("ready");
    for (const s of senders) await s.say("go");
    const reports = await Promise.all(receivers.map((r) => r.json<PeerReport>()));
    await Promise.all(senders.map((s) => s.json<PeerReport>()));
    const received = reports.reduce((a, r) => a + r.count, 0);
    if (received !== w.count * pairs) {
      throw new Error(`ferry bench lost messages: ${received}/${w.count * pairs}`);
    }
    // One clock (CLOCK_MONOTONIC) for all processes: from the first receipt to the last.
    const start = Math.min(...reports.map((r) => r.firstNs));
    const spanNs = Math.max(...reports.map((r) => (r.lastNs - start) >>> 0));
    const seconds = spanNs / 1e9;
    return { msgsPerSec: received / seconds, mbPerSec: (received * bytes) / seconds / 1e6 };
  } finally {
    await Promise.all(peers.map((p) => p.stop()));
    ch.close();
    Channel.unlink(name, { prefix });
  }
}
