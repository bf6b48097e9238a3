// Async routes through a three-node JetStream cluster on loopback ports, with the node that leads
// the stream killed mid-stream: every message still arrives whole, and a message that arrives more
// than once has every later copy marked. Skipped where nats-server is not installed.

import assert from "node:assert/strict";
import type { Channel, Envelope } from "../mod.ts";
import { freePort, NatsServer, natsServerPath } from "../bench/nats_server.ts";
import { BridgeProcess } from "./bridge_process.ts";
import { checkPayload, patternPayload, Scope, within } from "./helpers.ts";

const HAVE_NATS = natsServerPath() !== undefined;
if (!HAVE_NATS) {
  console.log(
    "tests/bridge_cluster.test.ts: skipped, nats-server is not installed (apt-get install nats-server)",
  );
}

const COUNT = 600;
const SUBJECT = "t.ev";
const STREAM = "FERRY_cluster_ev";

/** Three nats-servers forming one JetStream cluster (nodes n0, n1, n2), each routing to the others. */
async function startCluster(): Promise<NatsServer[]> {
  const routes = [freePort(), freePort(), freePort()];
  const nodes: NatsServer[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const others = routes.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`).join(",");
      nodes.push(
        await NatsServer.start({
          args: [
            "-n",
            `n${i}`,
            "--cluster_name",
            "c",
            "--cluster",
            `nats://127.0.0.1:${routes[i]}`,
            "--routes",
            others,
          ],
        }),
      );
    }
  } catch (e) {
    for (const n of nodes) await n[Symbol.asyncDispose]();
    throw e;
  }
  return nodes;
}

/**
 * Makes what the bridges use replicated on all three nodes: the stream that takes the subject and
 * the bridge's KV bucket. JetStream refuses until the nodes have elected a meta leader and know
 * each other as peers (a fraction of a second, more on a loaded machine), so each is asked again,
 * with backoff, under the step's hang guard.
 */
async function replicate(urls: string[]): Promise<void> {
  const { connect, StorageType } = await import("npm:nats@2.29.3");
  const nc = await connect({ servers: urls, timeout: 5000 });
  try {
    const retry = async (what: string, make: () => Promise<unknown>) => {
      for (let backoff = 20;; backoff = Math.min(500, backoff * 2)) {
        try {
          return await make();
        } catch (e) {
          if (
            !/temporarily unavailable|no suitable peers|timeout|no responders|503|leader/i.test(String(e))
          ) {
            throw new Error(`${what}: ${e}`, { cause: e });
          }
        }
        await new Promise((resolve) => setTimeout(resolve, backoff));
      }
    };
    await within(
      (async () => {
        const jsm = await retry("JetStream", () => nc.jetstreamManager()) as Awaited<
          ReturnType<typeof nc.jetstreamManager>
        >;
        await retry(
          "the stream",
          () =>
            jsm.streams.add({
              name: STREAM,
              subjects: [SUBJECT],
              storage: StorageType.File,
              num_replicas: 3,
            }),
        );
        await retry(
          "the KV bucket",
          () => nc.jetstream().views.kv("ferry_bridge", { history: 1, replicas: 3 }),
        );
      })(),
      "the cluster takes a stream and a KV bucket with 3 replicas",
    );
  } finally {
    await nc.close();
  }
}

/** The node that leads the stream now (its name, n0..n2). */
async function streamLeader(urls: string[]): Promise<number> {
  const { connect } = await import("npm:nats@2.29.3");
  const nc = await connect({ servers: urls, timeout: 5000 });
  try {
    const info = await (await nc.jetstreamManager()).streams.info(STREAM);
    const leader = info.cluster?.leader ?? "";
    assert.match(leader, /^n[012]$/, `the stream has no leader: ${JSON.stringify(info.cluster)}`);
    return Number(leader.slice(1));
  } finally {
    await nc.close();
  }
}

Deno.test({
  name:
    "bridge, three-node cluster: the stream's leader killed mid-stream, every async message arrives, duplicates marked",
  ignore: !HAVE_NATS,
  async fn() {
    const nodes = await startCluster();
    await using _nodes = {
      [Symbol.asyncDispose]: async () => {
        for (const n of nodes) await n[Symbol.asyncDispose]();
      },
    };
    const urls = nodes.map((n) => n.url);
    await replicate(urls);

    await using a = new Scope();
    await using b = new Scope();
    const servers = ["--nats", urls.join(",")];
    await using bridgeA = new BridgeProcess(urls[0], a.prefix, [...servers, "--out", `ev=${SUBJECT}:async`]);
    // A short ack wait: what was in flight on the killed leader comes back soon.
    await using bridgeB = new BridgeProcess(urls[0], b.prefix, [
      ...servers,
      "--in",
      `${SUBJECT}=ev:async`,
      "--envelope",
      "--ack-wait",
      "2",
    ]);
    await within(Promise.all([bridgeA.ready, bridgeB.ready]), "both bridges start");

    const producer = a.open("ev", { mode: "async", timeout: 60_000 });
    const receiver = b.open("ev", { timeout: 60_000 }) as Channel<Envelope<Uint8Array>>;
    const sending = (async () => {
      for (let i = 0; i < COUNT; i++) await producer.send(patternPayload(i, 64 + (i % 7) * 100));
    })();

    /** Per message: its copies, each marked (redelivered) or not. */
    const copies = new Map<number, boolean[]>();
    const receive = async (until: number) => {
      while (copies.size < until) {
        const msg = await receiver.recv();
        const i = checkPayload(msg.data.data); // throws on a torn or mixed payload
        copies.set(i, [...copies.get(i) ?? [], msg.data.redelivered]);
      }
    };
    // Mid-stream: a third of the messages through, the rest still to be published and delivered.
    await within(receive(COUNT / 3), "the first third arrives");
    const leader = await streamLeader(urls);
    await nodes[leader].kill();
    await within(
      Promise.all([sending, receive(COUNT)]),
      "every message arrives after the leader died",
      60_000,
    );

    let duplicates = 0;
    for (let i = 0; i < COUNT; i++) {
      const seen = copies.get(i)!;
      duplicates += seen.length - 1;
      assert.ok(seen.filter((marked) => !marked).length <= 1, `message ${i} arrived twice unmarked: ${seen}`);
    }
    const statA = await bridgeA.stop();
    const statB = await bridgeB.stop();
    console.log(
      `bridge cluster: ${COUNT} messages checked byte for byte with leader n${leader} killed at ${
        Math.round(COUNT / 3)
      } deliveries; ${duplicates} duplicates (all marked); A forwarded ${statA.routes[0].forwarded} ` +
        `(retries ${statA.routes[0].retries}, reconnects ${statA.reconnects}), B forwarded ` +
        `${statB.routes[0].forwarded} (redelivered ${
          statB.routes[0].redelivered
        }, reconnects ${statB.reconnects})`,
    );
  },
});
