// ferry's main benchmark, for now: ack mode versus async mode, 64-byte raw messages, between two
// processes (this one sends, bench/peer.ts receives). Prints msgs/s and ack round-trip p50/p99.
//   deno run -A bench/ack_vs_async.ts [--count N] [--json FILE]

import { parseArgs } from "node:util";
import { Channel } from "../mod.ts";
import { core } from "../ffi/lib.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { count: { type: "string", default: "200000" }, json: { type: "string" } },
});
const COUNT = Number(values.count);
const PAYLOAD = new Uint8Array(64).fill(7);
const clock = core().ferry_clock_ns32;
const prefix = `bench${Deno.pid}`;

interface Row {
  workload: string;
  api: string;
  msgsPerSec: number;
  p50us?: number;
  p99us?: number;
}

async function withPeer(
  workload: "sync" | "async",
  count: number,
  run: (ch: Channel<Uint8Array>) => Promise<number[] | void>,
) {
  const name = `w${Math.random().toString(36).slice(2, 8)}`;
  const ch = Channel.open<Uint8Array>(name, {
    prefix,
    codec: "raw",
    timeout: 30_000,
    capacity: 64,
    maxMessageSize: 4096,
  });
  const peer = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./peer.ts", import.meta.url).pathname,
      workload,
      prefix,
      name,
      String(count),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = peer.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const nextLine = async () => {
    while (!buffered.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("benchmark peer exited early");
      buffered += value;
    }
    const at = buffered.indexOf("\n");
    const line = buffered.slice(0, at);
    buffered = buffered.slice(at + 1);
    return line;
  };
  try {
    if ((await nextLine()) !== "ready") throw new Error("benchmark peer did not start");
    const samples = await run(ch);
    const report = JSON.parse(await nextLine()) as { received: number; elapsedNs: number };
    return { samples, report };
  } finally {
    ch.close();
    Channel.unlink(name, { prefix });
    await peer.status;
  }
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function roundTripRow(api: string, samples: number[]): Row {
  const sorted = Float64Array.from(samples).sort();
  const total = samples.reduce((a, b) => a + b, 0);
  return {
    workload: "ack round trip",
    api,
    msgsPerSec: samples.length / (total / 1e9),
    p50us: percentile(sorted, 0.5) / 1000,
    p99us: percentile(sorted, 0.99) / 1000,
  };
}

const rows: Row[] = [];
const rtCount = Math.min(COUNT, 100_000);

// Ack mode, one message at a time, blocking API on both sides.
{
  const { samples } = await withPeer("sync", rtCount, (ch) => {
    const s: number[] = [];
    for (let i = 0; i < rtCount; i++) {
      const t0 = clock();
      ch.sendSync(PAYLOAD, { mode: "ack" });
      s.push((clock() - t0) >>> 0);
    }
    return Promise.resolve(s);
  });
  rows.push(roundTripRow("sendSync / recvSync", samples as number[]));
}

// Ack mode with the promise API on both sides.
{
  const { samples } = await withPeer("async", rtCount, async (ch) => {
    const s: number[] = [];
    for (let i = 0; i < rtCount; i++) {
      const t0 = clock();
      await ch.send(PAYLOAD, { mode: "ack" });
      s.push((clock() - t0) >>> 0);
    }
    return s;
  });
  rows.push(roundTripRow("await send / for await", samples as number[]));
}

// Async mode: 16 slots in flight; throughput as the receiver saw it.
for (
  const [api, workload] of [["sendSync / recvSync", "sync"], ["await send / for await", "async"]] as const
) {
  const { report } = await withPeer(workload, COUNT, async (ch) => {
    if (workload === "sync") {
      for (let i = 0; i < COUNT; i++) ch.sendSync(PAYLOAD, { mode: "async" });
    } else {
      for (let i = 0; i < COUNT; i++) await ch.send(PAYLOAD, { mode: "async" });
    }
  });
  rows.push({ workload: "async throughput", api, msgsPerSec: report.received / (report.elapsedNs / 1e9) });
}

const fmt = (n: number | undefined, d = 2) => n === undefined ? "" : n.toFixed(d);
console.log(`ferry, 64-byte raw messages, ${COUNT} per throughput run, ${rtCount} per round-trip run`);
console.log(
  ["workload".padEnd(18), "api".padEnd(24), "msgs/s".padStart(12), "p50 us".padStart(9), "p99 us".padStart(9)]
    .join(" "),
);
for (const r of rows) {
  console.log([
    r.workload.padEnd(18),
    r.api.padEnd(24),
    Math.round(r.msgsPerSec).toLocaleString("en-US").padStart(12),
    fmt(r.p50us).padStart(9),
    fmt(r.p99us).padStart(9),
  ].join(" "));
}
if (values.json) {
  await Deno.writeTextFile(values.json, JSON.stringify({ payloadBytes: 64, count: COUNT, rows }, null, 2));
}
