// One party of the bridge bench's process rows (bench/bridge.ts), each in its own process as users
// run them: a ferry producer or consumer on one namespace, or the plain NATS client doing the same
// work. Prints "ready" once it can take part, then one JSON line with its figures.
//   bridge_peer.ts produce <prefix> <ack|async> <count> <warm>   ack: {p50Us, p99Us}; async: {}
//   bridge_peer.ts consume <prefix> <count> <warm>               {count, firstMs, lastMs}
//   bridge_peer.ts request <url> <subject> <count> <warm>        {p50Us, p99Us}
//   bridge_peer.ts js-publish <url> <subject> <total> <window>   {} once every publish was acked
//   bridge_peer.ts js-consume <url> <stream> <count> <warm>      {count, firstMs, lastMs}
// Throughput is timed where the messages arrive, from the `warm`th to the last, on the wall clock.
// The ferry channel is "x" in the given namespace, raw codec, 64 B payloads; NATS responders are
// bench/nats_peer.ts ("reply"). FERRY_BENCH_SPIN, when set, is the ferry peers' `spin` option
// ("0": every wait parks at once, as waits that last a NATS round trip end up doing);
// FERRY_BENCH_SLOTS, the producer's `slots`.
// The JetStream peers' lines carry `cpuUs`: their CPU time (user + system) per message.

import process from "node:process";
import { connect } from "npm:nats@2.29.3";
import { Channel } from "../mod.ts";
import { now, wallMs } from "./clock.ts";

const SIZE = 64;
const spinEnv = Deno.env.get("FERRY_BENCH_SPIN");
const spin = spinEnv === undefined ? undefined : spinEnv === "busy" ? "busy" : Number(spinEnv);
const slotsEnv = Deno.env.get("FERRY_BENCH_SLOTS");
const slots = slotsEnv === undefined ? undefined : Number(slotsEnv);
/** CPU µs this process spent since `from` (a process.cpuUsage() reading), per message of `n`. */
const cpuPer = (from: NodeJS.CpuUsage, n: number) => {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / n;
};
const payload = new Uint8Array(SIZE).fill(7);
const [role, where, third] = Deno.args;
// `consume` has no third argument: its numbers come one place earlier.
const [count, warm] = Deno.args.slice(role === "consume" ? 2 : 3, role === "consume" ? 4 : 5).map(Number);

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** Times `count` round trips of `trip` after `warm` untimed ones; p50 and p99 in µs. */
async function roundTrips(trip: () => Promise<unknown>): Promise<{ p50Us: number; p99Us: number }> {
  for (let i = 0; i < warm; i++) await trip();
  const samples = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const t0 = now();
    await trip();
    samples[i] = now() - t0;
  }
  samples.sort();
  return { p50Us: percentile(samples, 0.5) * 1000, p99Us: percentile(samples, 0.99) * 1000 };
}

/** Arrival timing: `arrived()` once per message returns the figures when warm + count arrived. */
function arrivals(): () => { count: number; firstMs: number; lastMs: number } | undefined {
  let seen = 0, firstMs = 0;
  return () => {
    if (seen === warm) firstMs = wallMs();
    return ++seen === warm + count ? { count, firstMs, lastMs: wallMs() } : undefined;
  };
}

async function main(): Promise<unknown> {
  switch (role) {
    case "produce": {
      const mode = third as "ack" | "async";
      // Opened as the README tells users to: in the mode it sends in.
      using ch = Channel.open<Uint8Array>("x", {
        prefix: where,
        codec: "raw",
        mode,
        timeout: 30_000,
        spin,
        slots,
      });
      console.log("ready");
      if (mode === "ack") {
        return await roundTrips(async () => {
          await ch.send(payload);
        });
      }
      for (let i = 0; i < warm + count; i++) await ch.send(payload);
      return {};
    }
    case "consume": {
      using ch = Channel.open<Uint8Array>("x", { prefix: where, codec: "raw", timeout: 60_000, spin });
      console.log("ready");
      const arrived = arrivals();
      for (;;) {
        await ch.recv();
        const figures = arrived();
        if (figures) return figures;
      }
    }
    case "request": {
      const nc = await connect({ servers: where });
      console.log("ready");
      const figures = await roundTrips(() => nc.request(third, payload, { timeout: 5000 }));
      await nc.close();
      return figures;
    }
    case "js-publish": {
      // What an async out route does: windowed publishes, each awaited for its PubAck.
      const nc = await connect({ servers: where });
      const js = nc.jetstream();
      console.log("ready");
      const cpu0 = process.cpuUsage();
      const window = warm;
      const inFlight = new Set<Promise<unknown>>();
      for (let i = 0; i < count; i++) { // count is the total here
        const p = js.publish(third, payload).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= window) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      const cpuUs = cpuPer(cpu0, count);
      await nc.close();
      return { cpuUs };
    }
    case "js-consume": {
      // What an async in route does: a durable pull consumer, each message acked.
      const nc = await connect({ servers: where });
      const consumer = await nc.jetstream().consumers.get(third, "bench");
      const messages = await consumer.consume({ max_messages: 32 });
      console.log("ready");
      const cpu0 = process.cpuUsage();
      const arrived = arrivals();
      for await (const m of messages) {
        m.ack();
        const figures = arrived();
        if (figures) {
          const cpuUs = cpuPer(cpu0, warm + count);
          messages.stop();
          await nc.close();
          return { ...figures, cpuUs };
        }
      }
      throw new Error("the JetStream consumer ended early");
    }
    default:
      throw new Error(`bridge bench peer: unknown role ${role}`);
  }
}

console.log(JSON.stringify(await main()));
