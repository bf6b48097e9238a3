// The NATS rows: request/reply round trips (next to ferry's promise round trip, the API a NATS
// user would compare) and core publish/subscribe throughput (next to ferry's async 1x1), through
// a local nats-server the bench starts on a free loopback port (bench/nats_server.ts, shared with
// the bridge's tests). The driver process is the requester or publisher, a nats_peer.ts process
// the other side. Skipped with a note where nats-server is not installed.

import { connect, type NatsConnection } from "npm:nats@2.29.3";
import { now } from "./clock.ts";
import { NatsServer, natsServerPath } from "./nats_server.ts";
import { Peer } from "./proc.ts";
import { latency, type Result, skipped, type Workload } from "./types.ts";

const PEER = new URL("./nats_peer.ts", import.meta.url);
/** NATS round trips take hundreds of µs: this many are enough for a p99.9 and keep a round short. */
const MAX_TRIPS = 5_000;
const MAX_MESSAGES = 200_000;

let server: Promise<NatsServer> | undefined;

/** Whether the NATS rows can run here; the note when they cannot. */
export function natsMissing(): string | undefined {
  return natsServerPath() === undefined ? "nats-server not installed: NATS rows skipped" : undefined;
}

/** Stops the bench's nats-server, if it started one. */
export async function stopNats(): Promise<void> {
  if (server) await (await server)[Symbol.asyncDispose]();
  server = undefined;
}

export async function runNats(w: Workload): Promise<Result> {
  const missing = natsMissing();
  if (missing) return skipped(missing);
  server ??= NatsServer.start();
  const url = (await server).url;
  const subject = `bench.${w.kind}.${Math.random().toString(36).slice(2, 7)}`;
  const payload = new Uint8Array(w.size).fill(7);
  const nc = await connect({ servers: url });
  let peer: Peer | undefined;
  try {
    if (w.kind === "ack-async") {
      const trips = Math.min(w.count, MAX_TRIPS), warm = Math.min(w.warm, MAX_TRIPS / 10);
      peer = new Peer(PEER, ["reply", url, subject]);
      await peer.expect("ready");
      for (let i = 0; i < warm; i++) await nc.request(subject, payload, { timeout: 5000 });
      const samples = new Float64Array(trips);
      for (let i = 0; i < trips; i++) {
        const t0 = now();
        await nc.request(subject, payload, { timeout: 5000 });
        samples[i] = now() - t0;
      }
      const lat = latency(samples);
      return { msgsPerSec: 1e6 / lat.meanUs!, mbPerSec: w.size / lat.meanUs!, ...lat };
    }
    const count = Math.min(w.count, MAX_MESSAGES), warm = Math.min(w.warm, MAX_MESSAGES / 10);
    const msgsPerSec = await publishToSubscriber(nc, subject, payload, count, warm);
    return { msgsPerSec, mbPerSec: msgsPerSec * w.size / 1e6 };
  } finally {
    await peer?.stop();
    await nc.close();
  }
}

/**
 * Core publish/subscribe throughput: `nc` publishes `warm + count` messages to a nats_peer.ts
 * subscriber process, which times the last `count`. Messages per second.
 */
export async function publishToSubscriber(
  nc: NatsConnection,
  subject: string,
  payload: Uint8Array,
  count: number,
  warm: number,
): Promise<number> {
  const peer = new Peer(PEER, ["sub", nc.getServer(), subject, String(count), String(warm)]);
  try {
    await peer.expect("ready");
    for (let i = 0; i < warm + count; i++) {
      nc.publish(subject, payload);
      // A flush now and then: the producer yields to its event loop, and the server is never
      // handed more than the subscriber's pending limit at once (it would drop a slow consumer).
      if (i % 256 === 255) await nc.flush();
    }
    await nc.flush();
    const r = await peer.json<{ count: number; firstMs: number; lastMs: number }>();
    return r.count / ((r.lastMs - r.firstMs) / 1000);
  } finally {
    await peer.stop();
  }
}
