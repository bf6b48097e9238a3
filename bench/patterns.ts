// Benchmark rows of the patterns (issue 11), between real processes, in rounds:
//   deno run -A bench/patterns.ts [--rounds 5] [--quick] [--json FILE]
// - frame header encode/decode (this process);
// - call round trip with the promise API (ferry rpc) next to a Unix-socket request/response in Deno
//   (length-prefixed msgpack frames, the server a separate process) and NATS request/reply when
//   `nats-server` is installed (client npm:nats@2, in separate processes: bench/patterns_nats_peer.ts);
// - streamed items per second (one server process, the loop here), each item its own message and
//   with the server's streamBatch 64 (items its generator has ready share a message);
// - pub/sub deliveries per second to 3 subscriber processes, and what plain channels deliver in
//   the same shape (a value sent into 3 channels, each read by its own process): the ceiling under it.
// Each row reports the median and range over rounds; transports alternate within a round. The
// machine may be shared: the range says how noisy a figure is.

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Packr, Unpackr } from "npm:msgpackr@1.11.5/pack";
import { Channel, connect, FrameKind, FrameWriter, publisher, readFrame, serve, subscribe } from "../mod.ts";
import { textLines } from "../cli/lines.ts";

const SELF = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NATS_PEER = fileURLToPath(new URL("./patterns_nats_peer.ts", import.meta.url));
const ARGS = { a: 1, b: 2 };

// ------------------------------------------------------------------ child roles

async function role(args: string[]): Promise<boolean> {
  const [name, prefix, extra] = args;
  if (name === "rpc-server") {
    // `extra`: the server's streamBatch (default 1, each item its own message).
    await using _server = serve("bench", {
      echo: (x: unknown) => x,
      async *count({ n }: { n: number }) {
        for (let i = 0; i < n; i++) yield i;
      },
    }, { prefix, streamBatch: Number(extra ?? 1) });
    console.log("ready");
    for await (const _ of textLines(Deno.stdin.readable)) { /* until stdin closes */ }
    return true;
  }
  if (name === "subscriber") {
    const count = Number(extra);
    using sub = subscribe("prices", { prefix, whenFull: "wait", capacity: 1024, maxMessageSize: 256 });
    console.log("ready");
    let n = 0;
    for await (const _ of sub) if (++n === count) break;
    console.log("done");
    return true;
  }
  if (name === "receiver") {
    // The pub/sub row's ceiling: the same value to a plain channel per subscriber, no pub/sub layer.
    const count = Number(extra);
    using ch = Channel.open(`inbox${args[3]}`, {
      prefix,
      mode: "async",
      capacity: 1024,
      maxMessageSize: 256,
    });
    console.log("ready");
    let n = 0;
    for await (const _ of ch) if (++n === count) break;
    console.log("done");
    return true;
  }
  if (name === "socket-server") {
    const listener = Deno.listen({ transport: "unix", path: prefix });
    console.log("ready");
    const conn = await listener.accept();
    const packr = new Packr(), unpackr = new Unpackr();
    const reader = new FrameReader(conn);
    for (;;) {
      const frame = await reader.next();
      if (frame === undefined) break;
      const { a } = unpackr.unpack(frame) as { m: string; a: unknown };
      await writeAll(conn, withLength(packr.pack(a)));
    }
    return true;
  }
  return false;
}

// ------------------------------------------------------------------ Unix socket framing

function withLength(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, true);
  out.set(body, 4);
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}

/** Reads length-prefixed frames from a connection. */
class FrameReader {
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  constructor(private conn: Deno.Conn) {}
  async next(): Promise<Uint8Array | undefined> {
    for (;;) {
      if (this.#end - this.#start >= 4) {
        const len = new DataView(this.#buf.buffer, this.#start).getUint32(0, true);
        if (this.#end - this.#start >= 4 + len) {
          const frame = this.#buf.slice(this.#start + 4, this.#start + 4 + len);
          this.#start += 4 + len;
          return frame;
        }
      }
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      const n = await this.conn.read(this.#buf.subarray(this.#end));
      if (n === null) return undefined;
      this.#end += n;
    }
  }
}

// ------------------------------------------------------------------ processes

class Peer {
  readonly child: Deno.ChildProcess;
  #lines: AsyncIterableIterator<string>;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  constructor(args: string[], cwd = ROOT) {
    this.child = new Deno.Command(Deno.execPath(), {
      args,
      cwd,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#lines = textLines(this.child.stdout).values();
    this.#stdin = this.child.stdin.getWriter();
  }
  static self(...args: string[]): Peer {
    return new Peer(["run", "-A", SELF, ...args]);
  }
  async line(): Promise<string> {
    const { value, done } = await this.#lines.next();
    if (done) throw new Error("a benchmark peer exited early");
    return value;
  }
  async stop(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await this.child.status;
    clearTimeout(timer);
    for await (const _ of this.#lines) { /* drain */ }
  }
}

// ------------------------------------------------------------------ measurements

interface Latency {
  p50: number;
  p99: number;
  perSec: number;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function timeCalls(count: number, call: () => Promise<unknown>): Promise<Latency> {
  for (let i = 0; i < Math.min(2000, count); i++) await call(); // warm up
  const times = new Float64Array(count);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await call();
    times[i] = (performance.now() - t) * 1000;
  }
  const total = performance.now() - start;
  times.sort();
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99), perSec: count / (total / 1000) };
}

function uniquePrefix(): string {
  return `bench${Deno.pid}_${crypto.randomUUID().slice(0, 6)}`;
}

function unlinkPrefix(prefix: string): void {
  for (const entry of Deno.readDirSync("/dev/shm")) {
    if (entry.name.startsWith(`${prefix}.`) || entry.name.startsWith(`${prefix}~`)) {
      Deno.removeSync(`/dev/shm/${entry.name}`);
    }
  }
}

async function ferryCall(count: number): Promise<Latency> {
  const prefix = uniquePrefix();
  const server = Peer.self("rpc-server", prefix);
  await server.line();
  try {
    using client = connect("bench", { prefix });
    return await timeCalls(count, () => client.call("echo", ARGS));
  } finally {
    await server.stop();
    unlinkPrefix(prefix);
  }
}

async function socketCall(count: number): Promise<Latency> {
  const path = `/tmp/ferry_bench_${Deno.pid}_${crypto.randomUUID().slice(0, 6)}.sock`;
  const server = Peer.self("socket-server", path);
  await server.line();
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    const packr = new Packr(), unpackr = new Unpackr();
    const reader = new FrameReader(conn);
    return await timeCalls(count, async () => {
      await writeAll(conn, withLength(packr.pack({ m: "echo", a: ARGS })));
      unpackr.unpack((await reader.next())!);
    });
  } finally {
    conn.close();
    await server.stop();
    await Deno.remove(path).catch(() => {});
  }
}

function natsInstalled(): boolean {
  try {
    return new Deno.Command("nats-server", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync()
      .success;
  } catch {
    return false;
  }
}

async function natsCall(count: number): Promise<Latency> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = new Deno.Command("nats-server", {
    args: ["-a", "127.0.0.1", "-p", String(port)],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // nats-server says it is ready on stderr.
  const lines = textLines(server.stderr);
  for await (const line of lines) if (line.includes("Server is ready")) break;
  // The NATS client runs without the repository's config (it needs Deno's npm resolver, not node_modules).
  const peerArgs = (r: string) => ["run", "-A", "--no-config", NATS_PEER, r, String(port), String(count)];
  const responder = new Peer(peerArgs("responder"), "/tmp");
  await responder.line();
  const requester = new Peer(peerArgs("requester"), "/tmp");
  try {
    return JSON.parse(await requester.line()) as Latency;
  } finally {
    await requester.stop();
    await responder.stop();
    server.kill("SIGTERM");
    await server.status;
    for await (const _ of lines) { /* drain */ }
  }
}

async function streamRate(count: number, window: number, streamBatch = 1): Promise<number> {
  const prefix = uniquePrefix();
  const server = Peer.self("rpc-server", prefix, String(streamBatch));
  await server.line();
  try {
    using client = connect("bench", { prefix, replyCapacity: 256, replyMaxMessageSize: 1024 });
    for await (const _ of client.stream("count", { n: 1000 }, { window })) { /* warm up */ }
    const start = performance.now();
    let n = 0;
    for await (const _ of client.stream("count", { n: count }, { window })) n++;
    if (n !== count) throw new Error(`stream gave ${n} of ${count}`);
    return count / ((performance.now() - start) / 1000);
  } finally {
    await server.stop();
    unlinkPrefix(prefix);
  }
}

async function pubsubRate(wanted: number, subscribers: number, batch: number): Promise<number> {
  const count = Math.ceil(wanted / batch) * batch;
  const prefix = uniquePrefix();
  const subs = Array.from({ length: subscribers }, () => Peer.self("subscriber", prefix, String(count)));
  try {
    for (const s of subs) await s.line();
    using pub = publisher({ prefix, timeout: 60_000 });
    const value = { sym: "EURUSD", px: 1.0842 };
    const start = performance.now();
    if (batch === 1) { for (let i = 0; i < count; i++) await pub.publish("prices", value); }
    else {
      const values = Array.from({ length: batch }, () => value);
      for (let i = 0; i < count; i += batch) await pub.publishMany("prices", values);
    }
    for (const s of subs) if ((await s.line()) !== "done") throw new Error("a subscriber failed");
    return (count * subscribers) / ((performance.now() - start) / 1000);
  } finally {
    for (const s of subs) await s.stop();
    unlinkPrefix(prefix);
  }
}

/**
 * What the channels under pub/sub deliver with nothing on top: one value sent into each of
 * `receivers` plain channels (`await send`, or `await sendMany` of `batch` values; msgpack), each read by
 * its own process with `for await`.
 */
async function fanOutRate(wanted: number, receivers: number, batch: number): Promise<number> {
  const count = Math.ceil(wanted / batch) * batch;
  const prefix = uniquePrefix();
  const peers = Array.from(
    { length: receivers },
    (_, i) => Peer.self("receiver", prefix, String(count), String(i)),
  );
  try {
    for (const p of peers) await p.line();
    const inboxes = peers.map((_, i) => Channel.open(`inbox${i}`, { prefix, mode: "async", create: false }));
    const value = { sym: "EURUSD", px: 1.0842 };
    const start = performance.now();
    if (batch === 1) { for (let i = 0; i < count; i++) for (const ch of inboxes) await ch.send(value); }
    else {
      const values = Array.from({ length: batch }, () => value);
      for (let i = 0; i < count; i += batch) for (const ch of inboxes) await ch.sendMany(values);
    }
    for (const p of peers) if ((await p.line()) !== "done") throw new Error("a receiver failed");
    const rate = (count * receivers) / ((performance.now() - start) / 1000);
    for (const ch of inboxes) ch.close();
    return rate;
  } finally {
    for (const p of peers) await p.stop();
    unlinkPrefix(prefix);
  }
}

function frameCost(count: number): { encodeNs: number; decodeNs: number; headerOnlyNs: number } {
  const writer = new FrameWriter();
  const header = {
    kind: FrameKind.Request,
    id: 12345,
    replyTo: "bench!reply.12345.0123abcd",
    subject: "echo",
  };
  let frame = writer.encode(header, ARGS);
  let t = performance.now();
  for (let i = 0; i < count; i++) frame = writer.encode(header, ARGS);
  const encodeNs = (performance.now() - t) * 1e6 / count;
  const copy = frame.slice();
  let sink = 0;
  t = performance.now();
  for (let i = 0; i < count; i++) sink += readFrame(copy).id;
  const headerOnlyNs = (performance.now() - t) * 1e6 / count;
  t = performance.now();
  for (let i = 0; i < count; i++) sink += (readFrame(copy).data as { a: number }).a;
  const decodeNs = (performance.now() - t) * 1e6 / count;
  if (sink === 0) throw new Error("unreachable");
  return { encodeNs, decodeNs, headerOnlyNs };
}

// ------------------------------------------------------------------ report

function summary(values: number[]): { median: number; min: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
}

function fmt(n: number, digits = 1): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(digits);
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { rounds: { type: "string" }, quick: { type: "boolean" }, json: { type: "string" } },
  });
  const quick = values.quick ?? false;
  const rounds = Number(values.rounds ?? (quick ? 3 : 5));
  const calls = quick ? 5_000 : 20_000;
  const items = quick ? 200_000 : 1_000_000;
  const publishes = quick ? 100_000 : 300_000;
  const nats = natsInstalled();
  const results: Record<string, number[]> = {};
  const add = (key: string, v: number) => (results[key] ??= []).push(v);

  console.log(
    `patterns benchmark: ${rounds} rounds, ${calls} calls, ${items} stream items, ${publishes} publishes x 3 ` +
      `subscribers; ${navigator.hardwareConcurrency} CPUs; NATS ${
        nats ? "included" : "not installed (skipped)"
      }`,
  );
  for (let r = 0; r < rounds; r++) {
    const f = frameCost(quick ? 200_000 : 1_000_000);
    add("frame encode ns", f.encodeNs);
    add("frame header read ns", f.headerOnlyNs);
    add("frame read+decode ns", f.decodeNs);
    const order = r % 2 === 0 ? ["ferry", "socket", "nats"] : ["nats", "socket", "ferry"];
    for (const t of order) {
      if (t === "nats" && !nats) continue;
      const l = t === "ferry"
        ? await ferryCall(calls)
        : t === "socket"
        ? await socketCall(calls)
        : await natsCall(calls);
      add(`call ${t} p50 us`, l.p50);
      add(`call ${t} p99 us`, l.p99);
      add(`call ${t} calls/s`, l.perSec);
    }
    add("stream items/s (window 32)", await streamRate(items, 32));
    add("stream items/s (window 256)", await streamRate(items, 256));
    add("stream items/s (window 32, batch 64)", await streamRate(items, 32, 64));
    add("stream items/s (window 256, batch 64)", await streamRate(items, 256, 64));
    add("pubsub deliveries/s (3 subscribers, publish)", await pubsubRate(publishes / 5, 3, 1));
    add("pubsub deliveries/s (3 subscribers, publishMany 256)", await pubsubRate(publishes * 2, 3, 256));
    add("channels deliveries/s (3 receivers, send)", await fanOutRate(publishes / 5, 3, 1));
    add("channels deliveries/s (3 receivers, sendMany 256)", await fanOutRate(publishes * 2, 3, 256));
    console.log(`round ${r + 1}/${rounds} done`);
  }
  console.log("\nrow                                      median        range");
  const rows: Record<string, ReturnType<typeof summary>> = {};
  for (const [key, list] of Object.entries(results)) {
    const s = rows[key] = summary(list);
    console.log(`${key.padEnd(40)} ${fmt(s.median).padStart(9)}   ${fmt(s.min)} .. ${fmt(s.max)}`);
  }
  const ratio = (a: string, b: string) => rows[a] && rows[b] ? rows[b].median / rows[a].median : undefined;
  const vsSocket = ratio("call ferry p50 us", "call socket p50 us");
  const vsNats = ratio("call ferry p50 us", "call nats p50 us");
  console.log(
    `\ncall p50: ferry is ${vsSocket?.toFixed(1)}x lower than the Unix socket` +
      (vsNats === undefined ? "" : `, ${vsNats.toFixed(1)}x lower than NATS request/reply`),
  );
  if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify({ rounds, results, rows }, null, 2));
}

if (import.meta.main) {
  if (!await role(Deno.args)) await main(Deno.args);
}
