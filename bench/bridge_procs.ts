// The bridge bench's process rows: every party in its own process, as users run them (producer,
// bridge A, bridge B and consumer for the bridge; requester and responder, publisher and consumer
// for plain NATS), so no row shares an event loop that the real deployment would not share.

import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamManager,
  type NatsConnection,
  StorageType,
} from "npm:nats@2.29.3";
import { Channel } from "../mod.ts";
import { Peer } from "./proc.ts";

const PEER = new URL("./bridge_peer.ts", import.meta.url);
const NATS_PEER = new URL("./nats_peer.ts", import.meta.url);
const BRIDGE = new URL("../cli/bridge_run.ts", import.meta.url);
/** The in-flight window of the JetStream publisher: the bridge's default route window. */
const WINDOW = 32;

/** Round trips (µs) or throughput (msg/s), as the bench reports them. */
export interface ProcFigures {
  value: number;
  unit: "us p50" | "msg/s";
  /**
   * CPU time (user + system) per message, in µs: bridged rows, of bridge A and bridge B; the
   * JetStream row, of its publisher (a) and consumer (b), the plain clients doing the same work.
   */
  cpuUs?: { a: number; b: number };
}

/** CPU time (user + system) a peer process used so far, in ms (Linux /proc; 10 ms ticks). */
function cpuMs(peer: Peer): number {
  const fields = Deno.readTextFileSync(`/proc/${peer.child.pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

interface Timing {
  count: number;
  firstMs: number;
  lastMs: number;
}

const rate = (t: Timing): ProcFigures => ({
  value: t.count / ((t.lastMs - t.firstMs) / 1000),
  unit: "msg/s",
});

/** Spawns a peer and waits for its "ready". */
async function started(script: URL, args: string[], env: Record<string, string> = {}): Promise<Peer> {
  const peer = new Peer(script, args, env);
  await peer.expect("ready");
  return peer;
}

async function stopAll(peers: (Peer | undefined)[]): Promise<void> {
  await Promise.all(peers.map((p) => p?.stop()));
}

/** NATS request/reply from Deno: a requester process and a responder process. */
export async function requestReply(
  url: string,
  subject: string,
  trips: number,
  warm: number,
): Promise<ProcFigures> {
  const peers: Peer[] = [];
  try {
    peers.push(await started(NATS_PEER, ["reply", url, subject]));
    const requester = await started(PEER, ["request", url, subject, String(trips), String(warm)]);
    peers.push(requester);
    const { p50Us } = await requester.json<{ p50Us: number }>();
    return { value: p50Us, unit: "us p50" };
  } finally {
    await stopAll(peers);
  }
}

/** A file-backed stream taking `subject`, with a durable pull consumer "bench" acking explicitly. */
export async function benchStream(
  nc: NatsConnection,
  subject: string,
): Promise<{ jsm: JetStreamManager; stream: string }> {
  const jsm = await nc.jetstreamManager();
  const stream = `BENCH_${subject.replace(/\W/g, "_")}`;
  await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File });
  await jsm.consumers.add(stream, {
    durable_name: "bench",
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
  });
  return { jsm, stream };
}

/** JetStream from Deno: a publisher awaiting each PubAck in a window, a pull consumer acking each. */
export async function jetStream(
  nc: NatsConnection,
  subject: string,
  messages: number,
  warm: number,
  window = WINDOW,
): Promise<ProcFigures> {
  const { jsm, stream } = await benchStream(nc, subject);
  const url = nc.getServer();
  const peers: Peer[] = [];
  try {
    const consumer = await started(PEER, ["js-consume", url, stream, String(messages), String(warm)]);
    peers.push(consumer);
    const publisher = await started(PEER, [
      "js-publish",
      url,
      subject,
      String(warm + messages),
      String(window),
    ]);
    peers.push(publisher);
    const timing = await consumer.json<Timing & { cpuUs: number }>();
    const { cpuUs } = await publisher.json<{ cpuUs: number }>();
    return { ...rate(timing), cpuUs: { a: cpuUs, b: timing.cpuUs } };
  } finally {
    await stopAll(peers);
    await jsm.streams.delete(stream);
  }
}

/**
 * A ferry ack round trip between two processes on one namespace, promise API: what each of the two
 * local legs of a bridged round trip (producer to bridge A, bridge B to consumer) costs at least.
 * `parked`: both sides park at once (`spin: 0`), as a bridged leg's waits, which outlast a NATS
 * round trip, end up doing; this is what such a leg costs on this machine.
 */
export async function localAck(
  tag: string,
  trips: number,
  warm: number,
  parked = false,
): Promise<ProcFigures> {
  const prefix = `benchL_${tag}`;
  const peers: Peer[] = [];
  const env: Record<string, string> = parked ? { FERRY_BENCH_SPIN: "0" } : {};
  try {
    peers.push(await started(PEER, ["consume", prefix, String(trips), String(warm)], env));
    const producer = await started(PEER, ["produce", prefix, "ack", String(trips), String(warm)], env);
    peers.push(producer);
    const { p50Us } = await producer.json<{ p50Us: number }>();
    return { value: p50Us, unit: "us p50" };
  } finally {
    await stopAll(peers);
    unlinkQuietly(prefix);
  }
}

function unlinkQuietly(prefix: string): void {
  try {
    Channel.unlink("x", { prefix });
  } catch { /* never created: a peer failed first */ }
}

/** A bridge process (`cli/bridge_run.ts`), once it printed its "ready" line. */
async function bridgeProcess(url: string, prefix: string, route: string[]): Promise<Peer> {
  const peer = new Peer(BRIDGE, ["--nats", url, "--prefix", prefix, "--json", "--stat-every", "0", ...route]);
  const line = JSON.parse(await peer.line());
  if (line.event !== "ready") throw new Error(`the bench's bridge said ${JSON.stringify(line)}`);
  return peer;
}

/** How the bridged rows' producer and consumer open their channels, where not as by default. */
export interface LocalParties {
  /** `spin: "busy"` for both: their waits, which last a NATS round trip, spin instead of parking. */
  busy?: boolean;
  /** The producer's `slots`: how many of its async messages a bridge may hold in flight at once. */
  slots?: number;
}

/** Producer on A -> bridge A -> NATS -> bridge B -> consumer on B, five processes with the server. */
export async function bridged(
  nc: NatsConnection,
  tag: string,
  mode: "ack" | "async",
  count: number,
  warm: number,
  local: LocalParties = {},
): Promise<ProcFigures> {
  const env: Record<string, string> = {};
  if (local.busy) env.FERRY_BENCH_SPIN = "busy";
  if (local.slots !== undefined) env.FERRY_BENCH_SLOTS = String(local.slots);
  const [a, b] = [`benchA_${tag}`, `benchB_${tag}`];
  const subject = `bench.${tag}`;
  const url = nc.getServer();
  const peers: Peer[] = [];
  try {
    peers.push(await bridgeProcess(url, a, ["--out", `x=${subject}:${mode}`]));
    peers.push(await bridgeProcess(url, b, ["--in", `${subject}=x:${mode}`]));
    const consumer = await started(PEER, ["consume", b, String(count), String(warm)], env);
    peers.push(consumer);
    // The bridges' CPU from here to the end, per message: where a bridged message's time goes.
    const [cpuA, cpuB] = [cpuMs(peers[0]), cpuMs(peers[1])];
    const producer = await started(PEER, ["produce", a, mode, String(count), String(warm)], env);
    peers.push(producer);
    const figures: ProcFigures = mode === "ack"
      ? { value: (await producer.json<{ p50Us: number }>()).p50Us, unit: "us p50" }
      : rate(await consumer.json<Timing>());
    const perMessage = (ms: number) => ms * 1000 / (count + warm);
    figures.cpuUs = { a: perMessage(cpuMs(peers[0]) - cpuA), b: perMessage(cpuMs(peers[1]) - cpuB) };
    return figures;
  } finally {
    await stopAll(peers);
    for (const p of [a, b]) unlinkQuietly(p);
    if (mode === "async") {
      const jsm = await nc.jetstreamManager();
      await jsm.streams.delete(await jsm.streams.find(subject)).catch(() => {});
    }
  }
}
