// The NATS bridge between two "machines": two namespaces (prefixes) with a bridge process each,
// through a real nats-server on a loopback port. Skipped, with a note, where nats-server is not
// installed (.ci/run installs it, so CI runs these).

import assert from "node:assert/strict";
import { type BridgeStat, type Channel, type Envelope, type Message, TimeoutError } from "../mod.ts";
import { checkPayload, Child, follow, patternPayload, Scope, within } from "./helpers.ts";
import { NatsServer, natsServerPath } from "../bench/nats_server.ts";

const HAVE_NATS = natsServerPath() !== undefined;
if (!HAVE_NATS) {
  console.log("tests/bridge.test.ts: skipped, nats-server is not installed (apt-get install nats-server)");
}

/** A bridge process (`cli.ts bridge --json`), started and read line by line. */
class BridgeProcess implements AsyncDisposable {
  #child: Child;
  readonly ready: Promise<BridgeStat>;

  constructor(url: string, prefix: string, args: string[]) {
    this.#child = new Child("bridge.ts", [
      "--nats",
      url,
      "--prefix",
      prefix,
      "--json",
      "--stat-every",
      "0",
      ...args,
    ]);
    this.ready = this.#event("ready");
  }

  async #event(name: string): Promise<BridgeStat> {
    const line = JSON.parse(await this.#child.line(`the bridge's "${name}" line`));
    assert.equal(line.event, name, JSON.stringify(line));
    return line as BridgeStat;
  }

  /** SIGKILL: the bridge dies wherever it is. */
  kill(): Promise<Deno.CommandStatus> {
    return this.#child.kill();
  }

  /** SIGTERM: the bridge finishes what is in flight, closes, and prints its last stat. */
  async stop(): Promise<BridgeStat> {
    Deno.kill(this.#child.pid, "SIGTERM");
    const stat = await this.#event("closed");
    assert.equal((await this.#child.status).code, 0);
    return stat;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#child[Symbol.asyncDispose]();
  }
}

/** A small seeded generator (mulberry32), so a failing chaos run can be replayed with its seed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test({
  name: "bridge, ack mode: a send on A resolves only after the receiver on B released the message",
  ignore: !HAVE_NATS,
  async fn() {
    await using server = await NatsServer.start();
    await using a = new Scope();
    await using b = new Scope();
    await using bridgeA = new BridgeProcess(server.url, a.prefix, [
      "--out",
      "jobs=t.jobs:ack",
      "--timeout",
      "2000",
    ]);
    await using bridgeB = new BridgeProcess(server.url, b.prefix, ["--in", "t.jobs=jobs:ack"]);
    await within(Promise.all([bridgeA.ready, bridgeB.ready]), "both bridges start");

    const producer = a.open("jobs", { mode: "ack", timeout: 2000 });
    const worker = b.open("jobs", { autoRelease: false });

    const sent = follow(producer.send({ id: 1, task: "resize" }));
    const msg = await within(worker.recv({ timeout: 10_000 }), "B receives the job");
    assert.deepEqual(msg.data, { id: 1, task: "resize" });
    // B holds it: its bridge's local ack send is pending, so no reply went to A, so A's bridge has
    // not released it, so the producer's send cannot have resolved.
    assert.equal(sent.settled, false, "A's send resolved while B still held the message");
    msg.release();
    await within(sent.promise, "A's send resolves after B's release");

    // B's receiver dies holding the next one: B's bridge gets PeerDiedError and replies so; A's
    // bridge cannot fail the producer's send through the public API, so it holds the message and
    // the producer sees TimeoutError at its own timeout (README, "Across machines").
    worker.close();
    await using holder = await b.spawn("peer.ts", "jobs", { autoRelease: false });
    const doomed = follow(producer.send({ id: 2 }));
    const held = await holder.ask("recv", { timeout: 10_000 });
    assert.deepEqual(held.data, { id: 2 });
    assert.equal(doomed.settled, false);
    await holder.kill();
    await assert.rejects(within(doomed.promise, "the producer's send settles"), TimeoutError);

    const statA = await bridgeA.stop();
    const statB = await bridgeB.stop();
    assert.equal(statA.routes[0].forwarded, 1);
    assert.equal(statA.routes[0].failed, 1);
    assert.equal(statB.routes[0].forwarded, 1);
    assert.equal(statB.routes[0].failed, 1);
    assert.match(statB.routes[0].lastError ?? "", /died/);
  },
});

/** What a chaos run kills: the bridge processes on either side, or the NATS server. */
type Victim = "bridge A" | "bridge B" | "server";

/**
 * Async mode through JetStream while `victims` are SIGKILLed at random moments and restarted:
 * every message must arrive whole, and of its copies at most one may be unmarked.
 */
async function chaos(victims: Victim[], seed: number, count: number, kills: number) {
  const rand = random(seed);
  await using server = await NatsServer.start();
  await using a = new Scope();
  await using b = new Scope();
  const outArgs = ["--out", "ev=t.ev:async", "--window", "16"];
  // A short ack wait, so that what a killed bridge B had taken comes back soon.
  const inArgs = ["--in", "t.ev=ev:async", "--envelope", "--ack-wait", "2"];
  const bridges: Record<"A" | "B", BridgeProcess> = {
    A: new BridgeProcess(server.url, a.prefix, outArgs),
    B: new BridgeProcess(server.url, b.prefix, inArgs),
  };
  try {
    await within(Promise.all([bridges.A.ready, bridges.B.ready]), "both bridges start");
    const producer = a.open("ev", { mode: "async", timeout: 60_000 });
    const receiver = b.open("ev", { timeout: 60_000 }) as Channel<Envelope<Uint8Array>>;

    const copies = new Map<number, { total: number; marked: number }>();
    let deliveries = 0;
    // The kill loop waits on the receiver's progress: a waiter per target, woken as deliveries count.
    const waiters: { at: number; wake: () => void }[] = [];
    const reached = (at: number) =>
      new Promise<void>((wake) =>
        deliveries >= at || copies.size === count ? wake() : waiters.push({ at, wake })
      );
    const progress = () => {
      for (const w of waiters.splice(0)) {
        if (deliveries >= w.at || copies.size === count) w.wake();
        else waiters.push(w);
      }
    };
    const receiving = (async () => {
      while (copies.size < count) {
        const msg: Message<Envelope<Uint8Array>> = await receiver.recv();
        const i = checkPayload(msg.data.data); // throws on a torn or mixed payload
        const c = copies.get(i) ?? { total: 0, marked: 0 };
        c.total++;
        if (msg.data.redelivered) c.marked++;
        copies.set(i, c);
        deliveries++;
        progress();
      }
    })();
    const sending = (async () => {
      for (let i = 0; i < count; i++) {
        await producer.send(patternPayload(i, 64 + 4 * Math.floor(rand() * 256)));
      }
    })();

    const killed: Record<Victim, number> = { "bridge A": 0, "bridge B": 0, server: 0 };
    for (let k = 0; k < kills && copies.size < count; k++) {
      // The chaos itself: a kill after a random number of deliveries, so it lands mid-stream.
      const at = deliveries + 1 + Math.floor(rand() * (count / (kills + 1)));
      await within(reached(at), `delivery ${at}`, 120_000);
      if (copies.size === count) break;
      const victim = victims[Math.floor(rand() * victims.length)];
      killed[victim]++;
      if (victim === "server") {
        await server.kill();
        await server.restart();
      } else {
        const side = victim === "bridge A" ? "A" : "B";
        await bridges[side].kill();
        bridges[side] = new BridgeProcess(
          server.url,
          side === "A" ? a.prefix : b.prefix,
          side === "A" ? outArgs : inArgs,
        );
        await within(bridges[side].ready, `${victim} restarts`);
      }
    }
    await within(Promise.all([sending, receiving]), "every message arrives", 120_000);

    const stats = { A: await bridges.A.stop(), B: await bridges.B.stop() };
    let duplicates = 0, marked = 0, unmarkedExtra = 0;
    for (let i = 0; i < count; i++) {
      const c = copies.get(i);
      assert.ok(c, `message ${i} never arrived`);
      duplicates += c.total - 1;
      marked += c.marked;
      if (c.total - c.marked > 1) unmarkedExtra++;
    }
    assert.equal(unmarkedExtra, 0, "a message arrived twice without either later copy marked redelivered");
    console.log(
      `bridge chaos (${
        victims.join(", ")
      }; seed ${seed}): ${count} messages sent, ${deliveries} deliveries ` +
        `checked byte for byte, ${duplicates} duplicates (all marked), ${marked} deliveries marked redelivered; ` +
        `kills: ${
          Object.entries(killed).filter(([, n]) => n > 0).map(([v, n]) => `${v} ${n}`).join(", ")
        }; ` +
        `last bridges' stat: A forwarded ${stats.A.routes[0].forwarded} (retries ${
          stats.A.routes[0].retries
        }, ` +
        `reconnects ${stats.A.reconnects}), B forwarded ${stats.B.routes[0].forwarded} (redelivered ` +
        `${stats.B.routes[0].redelivered}, reconnects ${stats.B.reconnects})`,
    );
    return { killed, duplicates };
  } finally {
    await bridges.A[Symbol.asyncDispose]();
    await bridges.B[Symbol.asyncDispose]();
  }
}

const SEED = Number(Deno.env.get("FERRY_BRIDGE_SEED") ?? Date.now() % 100_000);

Deno.test({
  name:
    "bridge, async mode: bridges SIGKILLed at random moments on either side lose nothing and tear nothing",
  ignore: !HAVE_NATS,
  async fn() {
    const { killed } = await chaos(["bridge A", "bridge B"], SEED, 2000, 8);
    assert.ok(killed["bridge A"] + killed["bridge B"] > 0);
  },
});

Deno.test({
  name:
    "bridge, async mode: the NATS server SIGKILLed and restarted mid-stream loses nothing (JetStream store)",
  ignore: !HAVE_NATS,
  async fn() {
    const { killed } = await chaos(["server"], SEED + 1, 1000, 2);
    assert.ok(killed.server > 0);
  },
});
