// The NATS bridge between two "machines": two namespaces (prefixes) with a bridge process each,
// through a real nats-server on a loopback port. Skipped, with a note, where nats-server is not
// installed (.ci/run installs it, so CI runs these).

import assert from "node:assert/strict";
import {
  Bridge,
  type Channel,
  type Envelope,
  InvalidOptionError,
  type Message,
  Namespace,
  PeerDiedError,
  publisher,
  RejectedError,
  subscribe,
  TimeoutError,
  type TopicMessage,
} from "../mod.ts";
import { checkPayload, follow, patternPayload, Scope, segmentsOf, within } from "./helpers.ts";
import { freePort, NatsServer, natsServerPath } from "../bench/nats_server.ts";
import { BridgeProcess, TwoSides } from "./bridge_process.ts";

const HAVE_NATS = natsServerPath() !== undefined;
if (!HAVE_NATS) {
  console.log("tests/bridge.test.ts: skipped, nats-server is not installed (apt-get install nats-server)");
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
    await using sides = await TwoSides.start(
      ["--out", "jobs=t.jobs:ack", "--timeout", "2000"],
      ["--in", "t.jobs=jobs:ack"],
    );
    const { a, b, bridgeA, bridgeB } = sides;

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

    // A receiver on B rejects the next one: B's bridge's send rejects with RejectedError, it replies
    // so, and A's bridge rejects the producer's message the same way.
    worker.close();
    await using rejecter = await b.spawn("peer.ts", "jobs", { autoRelease: false });
    const refused = follow(producer.send({ id: 2 }));
    assert.deepEqual((await rejecter.ask("recv", { timeout: 10_000 })).data, { id: 2 });
    assert.deepEqual(await rejecter.ask("reject"), { rejected: 1 });
    await assert.rejects(within(refused.promise, "the producer's send settles"), RejectedError);
    await rejecter.ask("close");

    // B's receiver dies holding the next one: B's bridge gets PeerDiedError and replies so, and
    // the producer's send rejects with PeerDiedError too, not TimeoutError (README, "Across machines").
    await using holder = await b.spawn("peer.ts", "jobs", { autoRelease: false });
    const doomed = follow(producer.send({ id: 3 }));
    const held = await holder.ask("recv", { timeout: 10_000 });
    assert.deepEqual(held.data, { id: 3 });
    assert.equal(doomed.settled, false);
    await holder.kill();
    await assert.rejects(within(doomed.promise, "the producer's send settles"), PeerDiedError);
    // Neither failure left anything behind on either side: the next job round-trips.
    const again = b.open("jobs");
    await within(
      Promise.all([producer.send({ id: 4 }), again.recv({ timeout: 10_000 })]),
      "a job after the failures",
    );

    const statA = await bridgeA.stop();
    const statB = await bridgeB.stop();
    assert.equal(statA.routes[0].forwarded, 2);
    assert.equal(statA.routes[0].failed, 2);
    assert.equal(statA.routes[0].held, 0);
    assert.equal(statB.routes[0].forwarded, 2);
    assert.equal(statB.routes[0].failed, 2);
  },
});

Deno.test({
  name:
    "bridge, ack mode: a message nobody answers on B is TimeoutError at the producer's timeout, and the route still works once someone answers",
  ignore: !HAVE_NATS,
  async fn() {
    // B's bridge serves another subject: nobody subscribes to t.jobs.
    await using sides = await TwoSides.start(
      ["--out", "jobs=t.jobs:ack", "--timeout", "800"],
      ["--in", "t.other=other:ack"],
    );
    // Slots to spare: each unanswered message stays held by A's bridge a while after its timeout.
    const producer = sides.a.open("jobs", { mode: "ack", codec: "raw", timeout: 800, slots: 4 }) as Channel<
      Uint8Array
    >;
    // No subscriber: the server answers "no responders", and A's bridge asks again until the timeout.
    await within(
      assert.rejects(producer.send(new Uint8Array([1])), TimeoutError),
      "a send nobody subscribes to",
    );

    const { connect } = await import("npm:nats@2.29.3");
    const nc = await connect({ servers: sides.server.url });
    try {
      // A subscriber that never replies: the request itself runs out of time.
      const heard: number[] = [];
      const silent = nc.subscribe("t.jobs", { callback: (_e, m) => heard.push(m.data[0]) });
      await nc.flush();
      await within(assert.rejects(producer.send(new Uint8Array([2])), TimeoutError), "a send nobody answers");
      assert.ok(heard.includes(2), `the silent subscriber heard ${JSON.stringify(heard)}`);
      silent.unsubscribe();
      // A plain NATS responder: an answer without ferry's status header means done, so A's bridge
      // releases the message and the producer's send resolves.
      nc.subscribe("t.jobs", { callback: (_e, m) => m.respond() });
      await nc.flush();
      await within(producer.send(new Uint8Array([3]), { timeout: 10_000 }), "an answered send");
    } finally {
      await nc.close();
    }
    const route = (await sides.bridgeA.stop()).routes[0];
    assert.equal(route.forwarded, 1);
    assert.equal(route.failed, 2);
  },
});

Deno.test({
  name:
    "bridge: a message larger than the NATS server or its stream takes is refused at once (ack: RejectedError; async: counted as failed), and the next one crosses",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await TwoSides.start(
      ["--out", "jobs=t.jobs:ack", "--out", "events=t.events:async", "--timeout", "20000"],
      ["--in", "t.jobs=jobs:ack", "--in", "t.events=events:async"],
    );
    // ferry's default maxMessageSize is 1 MiB, nats-server's default max_payload 1 MB: a message
    // of the full size cannot cross with its headers, whatever the bridge does.
    const big = new Uint8Array(1 << 20).fill(7);
    const small = new Uint8Array([1, 2, 3]);
    const jobs = sides.a.open("jobs", { mode: "ack", codec: "raw", timeout: 20_000 }) as Channel<Uint8Array>;
    const worker = sides.b.open("jobs", { codec: "raw" }) as Channel<Uint8Array>;
    // At once, not at the producer's 20 s timeout (within's own bound is shorter).
    await within(assert.rejects(jobs.send(big), RejectedError), "the too-large ack send", 10_000);
    const [, got] = await within(
      Promise.all([jobs.send(small), worker.recv({ timeout: 10_000 })]),
      "the next job",
    );
    assert.deepEqual(got.bytes, small);

    const events = sides.a.open("events", { mode: "async", codec: "raw" }) as Channel<Uint8Array>;
    const onB = sides.b.open("events", { codec: "raw" }) as Channel<Uint8Array>;
    await events.send(big);
    await events.send(small);
    // The big one is dropped by A's bridge, counted; the small one after it arrives, alone.
    assert.deepEqual((await within(onB.recv({ timeout: 10_000 }), "the next event")).bytes, small);

    // A stream that takes less than the server does (max_msg_size): JetStream refuses the message,
    // and that is as final.
    const { connect } = await import("npm:nats@2.29.3");
    const nc = await connect({ servers: sides.server.url });
    try {
      const jsm = await nc.jetstreamManager();
      const info = await jsm.streams.info(await jsm.streams.find("t.events"));
      await jsm.streams.update(info.config.name, { ...info.config, max_msg_size: 1024 });
    } finally {
      await nc.close();
    }
    await events.send(new Uint8Array(4096).fill(9));
    await events.send(small);
    assert.deepEqual((await within(onB.recv({ timeout: 10_000 }), "the event after it")).bytes, small);

    const stat = await sides.bridgeA.stop();
    const [jobsRoute, eventsRoute] = stat.routes;
    assert.equal(jobsRoute.failed, 1);
    assert.equal(eventsRoute.failed, 2);
    assert.equal(eventsRoute.forwarded, 2);
    assert.match(eventsRoute.lastError ?? "", /max_msg_size|maximum allowed/);
    assert.equal(onB.tryRecv(), undefined);
  },
});

Deno.test({
  name: "bridge: with the NATS server gone, a bridge told to stop still stops, within its close timeout",
  ignore: !HAVE_NATS,
  async fn() {
    const closing = ["--close-timeout", "300"];
    await using sides = await TwoSides.start(
      [
        "--out",
        "jobs=t.jobs:ack",
        "--in",
        "t.ev=ev:async",
        "--topic-out",
        "p=t.p",
        "--service-out",
        "m=t.m",
        ...closing,
      ],
      [
        "--in",
        "t.jobs=jobs:ack",
        "--out",
        "ev=t.ev:async",
        "--topic-in",
        "t.p=p",
        "--service-in",
        "t.m=m",
        ...closing,
      ],
    );
    await sides.server.kill();
    // A drain waits for the server; with none, each bridge gives up after its close timeout and
    // reports its last stat (stop() checks the "closed" line and exit code 0).
    await within(sides.bridgeA.stop(), "A's bridge stopping without NATS", 15_000);
    await within(sides.bridgeB.stop(), "B's bridge stopping without NATS", 15_000);
  },
});

Deno.test({
  name:
    "bridge, ack mode: an in route holds at most its window of messages; more are refused unread and the origin asks again",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await TwoSides.start(
      ["--out", "jobs=t.jobs:ack", "--timeout", "20000"],
      ["--in", "t.jobs=jobs:ack", "--window", "1", "--timeout", "20000"],
    );
    // A plain client floods B's route with nobody receiving on B: one message is taken (it waits
    // for a receiver); every other is answered Busy at once, instead of piling up in B's bridge.
    const { connect } = await import("npm:nats@2.29.3");
    const nc = await connect({ servers: sides.server.url });
    try {
      let busy = 0;
      const allBusy = Promise.withResolvers<void>();
      const answers = Array.from(
        { length: 20 },
        (_, i) =>
          nc.request("t.jobs", Uint8Array.of(i), { timeout: 20_000 }).then((m) => {
            const status = m.headers?.get("Ferry-Status") ?? "ok";
            if (status === "Busy" && ++busy === 19) allBusy.resolve();
            return status;
          }),
      );
      await within(allBusy.promise, "19 Busy answers");
      // The one taken is delivered once a receiver comes.
      const worker = sides.b.open("jobs", { codec: "raw" }) as Channel<Uint8Array>;
      await within(worker.recv({ timeout: 10_000 }), "the taken message");
      const statuses = await within(Promise.all(answers), "every answer");
      assert.deepEqual(statuses.filter((st) => st === "ok").length, 1);
      assert.equal(worker.tryRecv(), undefined);

      // Through A's bridge, which asks again while B is busy: every send ends delivered, once.
      const producer = sides.a.open("jobs", {
        mode: "ack",
        codec: "raw",
        slots: 6,
        timeout: 20_000,
      }) as Channel<
        Uint8Array
      >;
      const sent = Promise.all(Array.from({ length: 6 }, (_, i) => producer.send(Uint8Array.of(100 + i))));
      const got: number[] = [];
      for (let i = 0; i < 6; i++) {
        got.push((await within(worker.recv({ timeout: 20_000 }), `job ${i}`)).bytes[0]);
      }
      await within(sent, "the producer's sends");
      assert.deepEqual(got.sort((x, y) => x - y), [100, 101, 102, 103, 104, 105]);
      const [routeA] = (await sides.bridgeA.stop()).routes;
      assert.equal(routeA.forwarded, 6);
      assert.ok(routeA.retries > 0, "A's bridge never had to ask again");
    } finally {
      await nc.close();
    }
  },
});

Deno.test({
  name: "bridge: a copy that may repeat one sent before reaches a plain receiver on B marked redelivered",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await TwoSides.start(
      ["--out", "ev=t.ev:async", "--out", "jobs=t.jobs:ack"],
      ["--in", "t.ev=ev:async", "--in", "t.jobs=jobs:ack"],
    );
    const { a, b, bridgeB } = sides;

    // A producer on A marks a retry: A's bridge forwards it with Ferry-Redelivered, and B's bridge
    // sends it into B's channel marked, with no envelope. The unmarked copies arrive unmarked.
    const events = a.open("ev", { mode: "async" });
    const onB = b.open("ev");
    await events.send({ id: 1 });
    await events.send({ id: 2 }, { redelivered: true });
    await events.send({ id: 3 });
    const got = [];
    for (let i = 0; i < 3; i++) got.push(await within(onB.recv({ timeout: 10_000 }), `B's event ${i}`));
    assert.deepEqual(got.map((m) => [m.data, m.redelivered]), [[{ id: 1 }, false], [{ id: 2 }, true], [
      { id: 3 },
      false,
    ]]);

    const producer = a.open("jobs", { mode: "ack", timeout: 5000 });
    const worker = b.open("jobs");
    const [, job] = await within(
      Promise.all([producer.send({ id: 4 }, { redelivered: true }), worker.recv({ timeout: 10_000 })]),
      "a marked ack job round-trips",
    );
    assert.deepEqual([job.data, job.redelivered], [{ id: 4 }, true]);
    assert.equal((await bridgeB.stop()).routes.reduce((n, r) => n + r.redelivered, 0), 2);
  },
});

Deno.test({
  name:
    "bridge, topics: a message published on A reaches B's subscribers once, with its headers, and never loops",
  ignore: !HAVE_NATS,
  async fn() {
    await using server = await NatsServer.start();
    await using a = new Scope();
    await using b = new Scope();
    using _groups = {
      [Symbol.dispose]: () => [a, b].forEach((s) => Namespace.unlinkGroups({ prefix: s.prefix })),
    };
    // Both directions on both sides: each bridge must neither resend what it published locally nor
    // take back what its own namespace published.
    const both = ["--topic-out", "prices=t.prices", "--topic-in", "t.prices=prices"];
    await using bridgeA = new BridgeProcess(server.url, a.prefix, both);
    await using bridgeB = new BridgeProcess(server.url, b.prefix, both);
    await within(Promise.all([bridgeA.ready, bridgeB.ready]), "both bridges start");

    const remote = await b.spawn("pubsub_sub.ts", "prices");
    await remote.line("inbox name");
    using local = subscribe("prices", { prefix: a.prefix });
    using pubA = publisher({ prefix: a.prefix });
    for (let i = 0; i < 3; i++) {
      // Delivered to the local subscriber and to bridge A's.
      const result = await pubA.publish("prices", { i }, { headers: { traceparent: `t${i}` } });
      assert.equal(result.delivered, 2);
    }
    await remote.tell("read 3");
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(JSON.parse(await remote.line(`B's copy of message ${i}`)), {
        topic: "prices",
        data: { i },
        headers: { traceparent: `t${i}` },
      });
    }
    // B's message reaches A's subscriber through bridge A after any copy that looped (NATS and each
    // bridge keep each publisher's order), so bridge A having published nothing before it proves
    // that none did. (A subscriber takes its publishers in turns, so only per-publisher order holds.)
    using pubB = publisher({ prefix: b.prefix });
    await pubB.publish("prices", { from: "B" }, { headers: { "idempotency-key": "k1" } });
    const got: TopicMessage[] = [];
    while (!got.some((m) => m.publisher !== Deno.pid)) {
      got.push(await within(local.recv({ timeout: 10_000 }), `A's message ${got.length}`));
    }
    for (let m = local.tryRecv(); m !== undefined; m = local.tryRecv()) got.push(m);
    const fromBridge = got.filter((m) => m.publisher !== Deno.pid);
    assert.deepEqual(fromBridge.map((m) => [m.data, m.headers]), [[{ from: "B" }, {
      "idempotency-key": "k1",
    }]]);
    assert.deepEqual(got.filter((m) => m.publisher === Deno.pid).map((m) => m.data), [{ i: 0 }, { i: 1 }, {
      i: 2,
    }]);

    const [statA] = [await bridgeA.stop(), await bridgeB.stop()];
    assert.deepEqual(
      statA.routes.map((r) => [r.direction, r.mode, r.channel, r.forwarded, r.failed]),
      [["out", "topic", "prices", 3, 0], ["in", "topic", "prices", 1, 0]],
    );
  },
});

Deno.test({
  name: "bridge, topics: values cross as standard msgpack, which a plain NATS client reads and publishes",
  ignore: !HAVE_NATS,
  async fn() {
    await using server = await NatsServer.start();
    await using a = new Scope();
    await using bridge = new BridgeProcess(server.url, a.prefix, [
      "--topic-out",
      "prices=t.prices",
      "--topic-in",
      "t.quotes=quotes",
    ]);
    await within(bridge.ready, "the bridge starts");
    const { connect: natsConnect } = await import("npm:nats@2.29.3");
    const nc = await natsConnect({ servers: server.url });
    try {
      // {n: 5} as any msgpack library writes it: a map, not msgpackr's record extension (d4 72).
      const n5 = Uint8Array.of(0x81, 0xa1, 0x6e, 0x05);
      // Out: an object, and a Map, are that map on NATS.
      const out = nc.subscribe("t.prices", { max: 2 });
      await nc.flush();
      using pub = publisher({ prefix: a.prefix });
      assert.equal((await pub.publish("prices", { n: 5 })).delivered, 1);
      assert.equal((await pub.publish("prices", new Map([["n", 5]]))).delivered, 1);
      const published: number[][] = [];
      for await (const m of out) published.push([...m.data]);
      assert.deepEqual(published, [[...n5], [...n5]]);

      // In: the plain client's map is the subscriber's plain object (not a JS Map).
      using quotes = subscribe("quotes", { prefix: a.prefix });
      nc.publish("t.quotes", n5);
      const m = await within(quotes.recv({ timeout: 10_000 }), "the plain client's message");
      assert.deepEqual(m.data, { n: 5 });
    } finally {
      await nc.close();
    }
    const [out, into] = (await bridge.stop()).routes;
    assert.deepEqual([out.forwarded, out.failed, into.forwarded, into.failed], [2, 0, 1, 0]);
  },
});

/** What a chaos run kills: the bridge processes on either side, or the NATS server. */
type Victim = "bridge A" | "bridge B" | "server";

/** One copy of a message as the receiver on B saw it: its envelope and ferry's own flag. */
interface Copy {
  /** Its place among all deliveries (1-based), and ms since the run started. */
  delivery: number;
  ms: number;
  deliveries: number;
  redelivered: boolean;
  sender: number;
  seq: number;
  origin: string;
  /**
   * `Message.redelivered` on B's channel: B's bridge sends a copy it knows may repeat marked, and
   * nothing on B requeues (its one receiver never dies), so this is `redelivered`, as a plain local
   * receiver sees it.
   */
  local: boolean;
}

/** A kill the chaos loop made: whom, after how many deliveries, when. */
interface Kill {
  victim: Victim;
  afterDelivery: number;
  ms: number;
}

/**
 * On a failure: the stream entries that carry the duplicated messages, so that a report says
 * whether A published a message twice (two entries) or B delivered one entry twice.
 */
async function streamEntries(url: string, subject: string, wanted: Set<string>): Promise<string> {
  const { connect } = await import("npm:nats@2.29.3");
  const nc = await connect({ servers: url, timeout: 5000 });
  try {
    const jsm = await nc.jetstreamManager();
    const stream = await jsm.streams.find(subject);
    const info = await jsm.streams.info(stream);
    const found: string[] = [];
    for (let s = info.state.first_seq; s <= info.state.last_seq; s++) {
      const m = await jsm.streams.getMessage(stream, { seq: s }).catch(() => undefined);
      if (m === undefined) continue;
      const key = `${m.header.get("Ferry-Sender")}/${m.header.get("Ferry-Seq")}`;
      if (wanted.has(key)) {
        found.push(`  stream seq ${s}: ${key} Ferry-Redelivered=${m.header.get("Ferry-Redelivered") || "-"}`);
      }
    }
    const consumers = (await jsm.consumers.list(stream).next())
      .map((c) =>
        `${c.name} delivered ${c.delivered.stream_seq} ack floor ${c.ack_floor.stream_seq} redelivered ${c.num_redelivered}`
      );
    return `stream '${stream}' (${info.state.messages} messages, seq ${info.state.first_seq}..${info.state.last_seq}; ` +
      `consumers: ${consumers.join("; ")}):\n${found.join("\n") || "  (none found)"}`;
  } finally {
    await nc.close();
  }
}

/**
 * Async mode through JetStream while `victims` are SIGKILLed at random moments and restarted:
 * every message must arrive whole, and of its copies at most one may be unmarked. A failure names
 * the seed (FERRY_BRIDGE_SEED replays the same kills at the same delivery counts), the kills, and
 * every copy of each message that arrived more than once unmarked.
 */
async function chaos(victims: Victim[], seed: number, count: number, kills: number) {
  const label = `bridge chaos (${victims.join(", ")}; FERRY_BRIDGE_SEED=${seed})`;
  console.log(`${label}: starting`);
  const rand = random(seed);
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const made: Kill[] = [];
  const seen = new Map<number, Copy[]>();
  let deliveries = 0;
  // What a failure prints: replayable with the seed.
  const report = () => {
    const lines = [`${label}: ${deliveries} deliveries, ${seen.size} of ${count} messages`];
    lines.push(
      `kills: ${
        made.map((k) => `${k.victim} after delivery ${k.afterDelivery} (${k.ms} ms)`).join(", ") || "none"
      }`,
    );
    for (const [i, list] of seen) {
      if (list.filter((c) => !c.redelivered).length < 2) continue;
      lines.push(`message ${i}, ${list.length} copies, unmarked duplicate:`);
      for (const c of list) {
        lines.push(
          `  delivery ${c.delivery} (${c.ms} ms): deliveries ${c.deliveries} redelivered ${c.redelivered} ` +
            `sender ${c.sender} seq ${c.seq} origin ${c.origin} (ferry's own flag on B: ${c.local})`,
        );
      }
    }
    return lines.join("\n");
  };
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

    // The kill loop waits on the receiver's progress: a waiter per target, woken as deliveries count.
    const waiters: { at: number; wake: () => void }[] = [];
    const reached = (at: number) =>
      new Promise<void>((wake) =>
        deliveries >= at || seen.size === count ? wake() : waiters.push({ at, wake })
      );
    const progress = () => {
      for (const w of waiters.splice(0)) {
        if (deliveries >= w.at || seen.size === count) w.wake();
        else waiters.push(w);
      }
    };
    const receiving = (async () => {
      while (seen.size < count) {
        const msg: Message<Envelope<Uint8Array>> = await receiver.recv();
        const i = checkPayload(msg.data.data); // throws on a torn or mixed payload
        deliveries++;
        const { deliveries: n, redelivered, sender, seq, origin } = msg.data;
        const list = seen.get(i) ?? [];
        list.push({
          delivery: deliveries,
          ms: ms(),
          deliveries: n,
          redelivered,
          sender,
          seq,
          origin,
          local: msg.redelivered,
        });
        seen.set(i, list);
        progress();
      }
    })();
    const sending = (async () => {
      for (let i = 0; i < count; i++) {
        await producer.send(patternPayload(i, 64 + 4 * Math.floor(rand() * 256)));
      }
    })();

    const killed: Record<Victim, number> = { "bridge A": 0, "bridge B": 0, server: 0 };
    for (let k = 0; k < kills && seen.size < count; k++) {
      // The chaos itself: a kill after a random number of deliveries, so it lands mid-stream.
      const at = deliveries + 1 + Math.floor(rand() * (count / (kills + 1)));
      await within(reached(at), `delivery ${at}`, 120_000);
      if (seen.size === count) break;
      const victim = victims[Math.floor(rand() * victims.length)];
      killed[victim]++;
      made.push({ victim, afterDelivery: deliveries, ms: ms() });
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
    try {
      await within(Promise.all([sending, receiving]), "every message arrives", 120_000);
    } catch (e) {
      throw new Error(`${report()}\n${(e as Error).message}`, { cause: e });
    }

    const stats = { A: await bridges.A.stop(), B: await bridges.B.stop() };
    let duplicates = 0, marked = 0;
    const unmarkedExtra = new Set<string>();
    for (let i = 0; i < count; i++) {
      const list = seen.get(i);
      assert.ok(list, `message ${i} never arrived\n${report()}`);
      const differ = list.find((c) => c.local !== c.redelivered);
      assert.ok(
        differ === undefined,
        `message ${i}: the local msg.redelivered (${differ?.local}) is not the bridge's mark ` +
          `(${differ?.redelivered}) at delivery ${differ?.delivery}\n${report()}`,
      );
      duplicates += list.length - 1;
      marked += list.filter((c) => c.redelivered).length;
      if (list.filter((c) => !c.redelivered).length > 1) {
        unmarkedExtra.add(`${list[0].sender}/${list[0].seq}`);
      }
    }
    if (unmarkedExtra.size > 0) {
      const entries = await streamEntries(server.url, "t.ev", unmarkedExtra).catch((e) =>
        `stream not read: ${e}`
      );
      assert.fail(
        `a message arrived twice without either later copy marked redelivered (${unmarkedExtra.size} messages)\n` +
          `${report()}\n${entries}\nlast bridges' stat: ${JSON.stringify(stats)}`,
      );
    }
    console.log(
      `${label}: ${count} messages sent, ${deliveries} deliveries ` +
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

Deno.test("bridge: a bad channel route is a typed error before anything is connected or opened", async () => {
  await using s = new Scope();
  // No server listens there: options that got past their checks would fail to connect instead.
  const nats = { servers: `nats://127.0.0.1:${freePort()}`, maxReconnectAttempts: 0 };
  const start = (options: object) => Bridge.start({ nats, prefix: s.prefix, ...options });
  const out = { channel: "jobs", subject: "t.jobs", mode: "ack" } as const;
  // The same channel out and back in from a subject that takes what it sends: a loop.
  await assert.rejects(start({ out: [out], in: [{ ...out, subject: "t.*" }] }), /round and round/);
  await assert.rejects(start({ out: [out], in: [{ ...out, subject: "t.jobs" }] }), /round and round/);
  // Empty tokens are no NATS subject.
  for (const subject of ["t..jobs", ".t", "t."]) {
    await assert.rejects(start({ out: [{ ...out, subject }] }), InvalidOptionError, subject);
  }
  await assert.rejects(start({ out: "jobs" }), /must be an array of routes/);
  await assert.rejects(start({ out: [{ ...out, timeout: NaN }] }), /not NaN/);
  assert.deepEqual(segmentsOf(s.prefix), [], "a refused bridge opened a channel");
  // Out to one subject and in from another is no loop.
  await assert.rejects(
    start({ out: [out], in: [{ ...out, subject: "t.done" }] }),
    (e: Error) => e.name === "NatsConnectionError",
  );
});
