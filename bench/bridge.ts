// The bridge's bench rows: 64 B ack round trip and async throughput through two bridges (namespace
// A -> NATS -> namespace B), next to what NATS itself does from Deno on the same machine: core
// request/reply, core publish/subscribe, and JetStream publish + pull consume (the work an async
// route does). By default every party runs in its own process, as users run them
// (bench/bridge_procs.ts): producer, bridge A, bridge B, consumer; requester and responder.
// `--inline` runs them all in this one process instead, one event loop for every party. Rounds
// alternate transports and the median and range are reported. Beside the rows users get by default:
// - "local parties spin": the producer and the consumer open their channels with `spin: "busy"`;
// - "producer slots 32": the bridge may hold as many of the producer's messages in flight as the
//   JetStream row's publisher keeps unacknowledged (32, an async route's window; 16 by default);
// - "16 in flight": JetStream at the depth of a producer with the default 16 slots;
// - "ferry ack round trip, parked": one local leg whose waits park, as a bridged leg's do when the
//   far side takes a NATS round trip.
// Together they show which part of a bridged round trip, and of its throughput, is the bridge.
//   deno run -A bench/bridge.ts [--rounds 5] [--trips 2000] [--messages 10000] [--inline] [--json FILE]
// Skipped, with a note, where nats-server is not installed.

import { parseArgs } from "node:util";
import { connect, type NatsConnection } from "npm:nats@2.29.3";
import { Bridge, Channel } from "../mod.ts";
import { NatsServer, natsServerPath } from "./nats_server.ts";
import * as procs from "./bridge_procs.ts";
import { publishToSubscriber } from "./nats.ts";

const SIZE = 64;
const payload = new Uint8Array(SIZE).fill(7);

interface Figures {
  /** Round trips: p50 in microseconds. Throughput: messages per second. */
  value: number;
  unit: "us p50" | "msg/s";
  /** Bridged rows in processes: CPU µs per message spent by bridge A and bridge B. */
  cpuUs?: { a: number; b: number };
}

type RowName =
  | "nats request/reply"
  | "bridge ack round trip"
  | "bridge ack round trip, local parties spin"
  | "ferry ack round trip, no bridge"
  | "ferry ack round trip, parked"
  | "nats pub/sub"
  | "jetstream publish+consume"
  | "jetstream publish+consume, 16 in flight"
  | "bridge async throughput"
  | "bridge async throughput, producer slots 32";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function natsRequestReply(nc: NatsConnection, subject: string, trips: number): Promise<Figures> {
  const responder = await connect({ servers: nc.getServer() });
  responder.subscribe(subject, { callback: (_e, m) => m.respond(m.data) });
  await responder.flush();
  const times: number[] = [];
  for (let i = 0; i < trips; i++) {
    const t = performance.now();
    await nc.request(subject, payload, { timeout: 5000 });
    times.push(performance.now() - t);
  }
  await responder.close();
  return { value: median(times) * 1000, unit: "us p50" };
}

async function natsPubSub(nc: NatsConnection, subject: string, messages: number): Promise<Figures> {
  const receiver = await connect({ servers: nc.getServer() });
  const done = Promise.withResolvers<void>();
  let got = 0;
  receiver.subscribe(subject, { callback: () => ++got === messages && done.resolve() });
  await receiver.flush();
  const t = performance.now();
  for (let i = 0; i < messages; i++) {
    nc.publish(subject, payload);
    // Yield now and then, as any producer sharing the event loop must.
    if (i % 256 === 255) await nc.flush();
  }
  await done.promise;
  const seconds = (performance.now() - t) / 1000;
  await receiver.close();
  return { value: messages / seconds, unit: "msg/s" };
}

/** What an async route does, done directly: windowed JetStream publishes, a pull consumer acking each. */
async function jetStream(nc: NatsConnection, subject: string, messages: number): Promise<Figures> {
  const { jsm, stream } = await procs.benchStream(nc, subject);
  const js = nc.jetstream();
  const receiver = await connect({ servers: nc.getServer() });
  const consumer = await receiver.jetstream().consumers.get(stream, "bench");
  const t = performance.now();
  const consuming = (async () => {
    const iter = await consumer.consume({ max_messages: 32 });
    let got = 0;
    for await (const m of iter) {
      m.ack();
      if (++got === messages) break;
    }
    iter.stop();
  })();
  const inFlight = new Set<Promise<unknown>>();
  for (let i = 0; i < messages; i++) {
    const p = js.publish(subject, payload).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 32) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  await consuming;
  const seconds = (performance.now() - t) / 1000;
  await receiver.close();
  await jsm.streams.delete(stream);
  return { value: messages / seconds, unit: "msg/s" };
}

async function bridged(url: string, tag: string, mode: "ack" | "async", count: number): Promise<Figures> {
  const [a, b] = [`benchA_${tag}`, `benchB_${tag}`];
  const subject = `bench.${tag}`;
  const bridges = [
    await Bridge.start({ nats: { servers: url }, prefix: a, out: [{ channel: "x", subject, mode }] }),
    await Bridge.start({ nats: { servers: url }, prefix: b, in: [{ subject, channel: "x", mode }] }),
  ];
  // Peers opened as the README tells users to: the producer in the mode it sends in.
  const producer = Channel.open<Uint8Array>("x", { prefix: a, codec: "raw", mode, timeout: 30_000 });
  const receiver = Channel.open<Uint8Array>("x", { prefix: b, codec: "raw", timeout: 30_000 });
  try {
    const receiving = (async () => {
      for (let i = 0; i < count; i++) await receiver.recv();
    })();
    if (mode === "ack") {
      const times: number[] = [];
      for (let i = 0; i < count; i++) {
        const t = performance.now();
        await producer.send(payload);
        times.push(performance.now() - t);
      }
      await receiving;
      return { value: median(times) * 1000, unit: "us p50" };
    }
    const t = performance.now();
    for (let i = 0; i < count; i++) await producer.send(payload);
    await receiving;
    return { value: count / ((performance.now() - t) / 1000), unit: "msg/s" };
  } finally {
    await Promise.all(bridges.map((br) => br.close()));
    producer.close();
    receiver.close();
    for (const p of [a, b]) Channel.unlink("x", { prefix: p });
  }
}

/** Core publish/subscribe with the subscriber in its own process (bench/nats_peer.ts). */
async function pubSubProcess(
  nc: NatsConnection,
  subject: string,
  messages: number,
  warm: number,
): Promise<Figures> {
  return { value: await publishToSubscriber(nc, subject, payload, messages, warm), unit: "msg/s" };
}

/** Runs the rows; returns null (with a note printed) when nats-server is missing. */
export async function runBridgeBench(argv: string[] = []): Promise<Record<RowName, Figures[]> | null> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: "string", default: "5" },
      // Rows long enough for V8 to have optimized every party: with 500 round trips, NATS's own
      // p50 read about 30% higher than with 2000.
      trips: { type: "string", default: "2000" },
      messages: { type: "string", default: "10000" },
      inline: { type: "boolean", default: false },
      json: { type: "string" },
    },
  });
  if (natsServerPath() === undefined) {
    console.log("bridge bench: skipped, nats-server is not installed (apt-get install nats-server)");
    return null;
  }
  const rounds = Number(values.rounds), trips = Number(values.trips), messages = Number(values.messages);
  await using server = await NatsServer.start();
  const nc = await connect({ servers: server.url });
  const rows = {} as Record<RowName, Figures[]>;
  const add = (name: RowName, f: Figures) => (rows[name] ??= []).push(f);
  try {
    const inline = values.inline;
    if (inline) {
      // Warm-up: connections, JIT, the first stream. Process rows warm up in each process instead.
      await natsRequestReply(nc, "warm.rr", 100);
      await bridged(server.url, "warm", "ack", 100);
    }
    const [tripsWarm, messagesWarm] = [Math.ceil(trips / 10), Math.ceil(messages / 10)];
    for (let r = 0; r < rounds; r++) {
      // Alternate the order each round, so neither side always runs on a warmer (or busier) machine.
      const steps: [RowName, () => Promise<Figures>][] = inline
        ? [
          ["nats request/reply", () => natsRequestReply(nc, `rr.${r}`, trips)],
          ["bridge ack round trip", () => bridged(server.url, `ack${r}`, "ack", trips)],
          ["nats pub/sub", () => natsPubSub(nc, `ps.${r}`, messages)],
          ["jetstream publish+consume", () => jetStream(nc, `js.${r}`, messages)],
          ["bridge async throughput", () => bridged(server.url, `async${r}`, "async", messages)],
        ]
        : [
          ["nats request/reply", () => procs.requestReply(server.url, `rr.${r}`, trips, tripsWarm)],
          ["bridge ack round trip", () => procs.bridged(nc, `ack${r}`, "ack", trips, tripsWarm)],
          [
            "bridge ack round trip, local parties spin",
            () => procs.bridged(nc, `ackb${r}`, "ack", trips, tripsWarm, { busy: true }),
          ],
          ["ferry ack round trip, no bridge", () => procs.localAck(`l${r}`, trips, tripsWarm)],
          ["ferry ack round trip, parked", () => procs.localAck(`p${r}`, trips, tripsWarm, true)],
          ["nats pub/sub", () => pubSubProcess(nc, `ps.${r}`, messages, messagesWarm)],
          ["jetstream publish+consume", () => procs.jetStream(nc, `js.${r}`, messages, messagesWarm)],
          [
            "jetstream publish+consume, 16 in flight",
            () => procs.jetStream(nc, `js16.${r}`, messages, messagesWarm, 16),
          ],
          ["bridge async throughput", () => procs.bridged(nc, `async${r}`, "async", messages, messagesWarm)],
          [
            "bridge async throughput, producer slots 32",
            () => procs.bridged(nc, `async32${r}`, "async", messages, messagesWarm, { slots: 32 }),
          ],
        ];
      if (r % 2 === 1) steps.reverse();
      for (const [name, step] of steps) add(name, await step());
    }
  } finally {
    await nc.close();
  }
  const fmt = (f: Figures[]) => {
    const v = f.map((x) => x.value);
    const digits = f[0].unit === "msg/s" ? 0 : 1;
    return `${median(v).toFixed(digits)} ${f[0].unit} (range ${Math.min(...v).toFixed(digits)}-${
      Math.max(...v).toFixed(digits)
    })`;
  };
  const m = (name: RowName) => median(rows[name].map((x) => x.value));
  console.log(
    `bridge bench: 64 B payloads, ${rounds} rounds, ${trips} round trips and ${messages} messages per row, ` +
      (values.inline ? "every party in this one process" : "every party in its own process"),
  );
  const names = Object.keys(rows) as RowName[];
  const width = Math.max(...names.map((n) => n.length)) + 2;
  for (const name of names) console.log(`  ${name.padEnd(width)}${fmt(rows[name])}`);
  for (const row of ["bridge ack round trip", "bridge ack round trip, local parties spin"] as const) {
    if (!rows[row]) continue;
    console.log(
      `  ${row} / nats request/reply: ${
        (m(row) / m("nats request/reply")).toFixed(2)
      }x (goal: at most 1.20x)`,
    );
  }
  for (const row of ["bridge async throughput", "bridge async throughput, producer slots 32"] as const) {
    if (!rows[row]) continue;
    console.log(
      `  ${row} / jetstream publish+consume: ${(m(row) / m("jetstream publish+consume")).toFixed(2)}x ` +
        `(goal: at least 0.80x); / nats pub/sub: ${(m(row) / m("nats pub/sub")).toFixed(2)}x`,
    );
  }
  if (rows["jetstream publish+consume, 16 in flight"]) {
    // The same depth on both sides: a producer's default 16 slots, 16 publishes unacknowledged.
    const ratio = m("bridge async throughput") / m("jetstream publish+consume, 16 in flight");
    console.log(`  bridge async throughput / jetstream publish+consume, 16 in flight: ${ratio.toFixed(2)}x`);
  }
  const cpuRows = [
    ["bridge ack round trip", "bridge A", "bridge B"],
    ["bridge async throughput", "bridge A", "bridge B"],
    ["bridge async throughput, producer slots 32", "bridge A", "bridge B"],
    ["jetstream publish+consume", "publisher", "consumer"],
  ] as const;
  for (const [name, a, b] of cpuRows) {
    const cpu = (rows[name] ?? []).flatMap((f) => f.cpuUs === undefined ? [] : [f.cpuUs]);
    if (cpu.length === 0) continue;
    console.log(
      `  ${name}: CPU per message in ${a} ${median(cpu.map((c) => c.a)).toFixed(0)} us, ` +
        `${b} ${median(cpu.map((c) => c.b)).toFixed(0)} us (medians)`,
    );
  }
  if (rows["ferry ack round trip, parked"]) {
    // What the bridge adds to NATS's round trip, next to what its two local legs cost: a bridged
    // round trip is NATS's plus a leg on each machine, whose waits last long enough to park.
    const added = m("bridge ack round trip") - m("nats request/reply");
    const legs = 2 * m("ferry ack round trip, parked");
    console.log(
      `  bridge ack - nats request/reply: ${added.toFixed(0)} us; two local ack legs: ` +
        `${(2 * m("ferry ack round trip, no bridge")).toFixed(0)} us spinning, ${
          legs.toFixed(0)
        } us parked; ` +
        `nats request/reply + two parked legs: ${
          ((m("nats request/reply") + legs) / m("nats request/reply")).toFixed(2)
        }x of nats request/reply`,
    );
  }
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(rows, null, 2));
  return rows;
}

if (import.meta.main) await runBridgeBench(Deno.args);
