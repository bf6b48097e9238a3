// Request/response across the bridge: callers on "machine" A (this process), a server of the
// service on B (a child process), a bridge process on each side, through a real nats-server.
// Skipped, with a note, where nats-server is not installed (.ci/run installs it, so CI runs these).

import assert from "node:assert/strict";
import type { Msg } from "npm:nats@2.29.3";
import {
  Bridge,
  type Channel,
  type Client,
  connect,
  InvalidNameError,
  InvalidOptionError,
  NatsConnectionError,
  PeerDiedError,
  RemoteError,
  type ServiceRoute,
  TimeoutError,
} from "../mod.ts";
import { freePort, natsServerPath } from "../bench/nats_server.ts";
import { type BridgeProcess, TwoSides } from "./bridge_process.ts";
import { follow, Scope, segmentsOf, within } from "./helpers.ts";

const HAVE_NATS = natsServerPath() !== undefined;
if (!HAVE_NATS) {
  console.log(
    "tests/bridge_services.test.ts: skipped, nats-server is not installed (apt-get install nats-server)",
  );
}

const SERVICE = "math";
/** The bridges' route timeout: longer than any step, so a call across ends by what happened. */
const CALL_TIMEOUT_MS = 20_000;

/** The next event B's server reported (see tests/workers/rpc_server.ts). */
async function nextEvent(events: Channel, what: string): Promise<Record<string, number>> {
  return (await within(events.recv({ timeout: Infinity }), what)).data as Record<string, number>;
}

/**
 * Two "machines" through one nats-server: A's bridge serves `math` by sending its calls on t.math,
 * B's answers them by calling B's `math`; `math` is a client of it on A. Disposing ends them all.
 */
class Sides implements AsyncDisposable {
  private constructor(readonly two: TwoSides, readonly math: Client) {}

  get a(): Scope {
    return this.two.a;
  }
  get b(): Scope {
    return this.two.b;
  }
  get bridgeA(): BridgeProcess {
    return this.two.bridgeA;
  }
  get bridgeB(): BridgeProcess {
    return this.two.bridgeB;
  }

  /** `argsB`: more arguments for B's bridge. */
  static async start(
    timeouts = { a: CALL_TIMEOUT_MS, b: CALL_TIMEOUT_MS },
    serverArgs: string[] = [],
    argsB: string[] = [],
  ): Promise<Sides> {
    const two = await TwoSides.start(
      ["--service-out", `${SERVICE}=t.math`, "--timeout", String(timeouts.a)],
      ["--service-in", `t.math=${SERVICE}`, "--timeout", String(timeouts.b), ...argsB],
      serverArgs,
    );
    try {
      // The caller's own timeout is longer than any step: its call ends by what the bridges answer.
      return new Sides(two, connect(SERVICE, { prefix: two.a.prefix, timeout: 10 * CALL_TIMEOUT_MS }));
    } catch (e) {
      await two[Symbol.asyncDispose]();
      throw e;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.math[Symbol.dispose]();
    await this.two[Symbol.asyncDispose]();
  }
}

Deno.test({
  name:
    "bridge, services: a call on A is answered by the server on B; its errors and headers cross as they would locally",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await Sides.start();
    const { b, math, bridgeA, bridgeB } = sides;
    const mathB = await b.spawn("rpc_server.ts", SERVICE);

    assert.equal(await within(math.call("add", { a: 1, b: 2 }), "a call across"), 3);
    assert.equal(await math.call("whoami"), mathB.pid, "answered by another server than B's");
    // Values cross as msgpack, whatever shapes A's namespace shares; the caller's headers as NATS headers.
    const value = {
      when: new Date(86_400_000),
      big: 2n ** 63n - 1n,
      unsigned: 2n ** 64n - 1n,
      bytes: new Uint8Array([1, 2, 3]),
      list: [1, "two"],
    };
    assert.deepEqual(
      await math.call("echo", value, { headers: { traceparent: "00-abc-01" } }),
      { value, headers: { traceparent: "00-abc-01" }, attempt: 0 },
    );
    // Standard msgpack has no integer beyond 64 bits: such a bigint is the caller's RemoteError
    // "Encode" at once, unary or streamed, not a value that only msgpackr could read.
    for (
      const call of [
        () => math.call("echo", { big: 2n ** 70n }),
        () => math.stream("count", { n: 2n ** 70n }).next(),
      ]
    ) {
      const tooBig = await within(call().catch((e) => e), "a bigint beyond 64 bits");
      assert.ok(tooBig instanceof RemoteError, String(tooBig));
      assert.equal(tooBig.remoteCode, "Encode");
      assert.match(tooBig.remoteMessage, /too large to fit in MessagePack 64-bit integer format/);
    }

    // A handler's error is the caller's RemoteError with the handler's code and message.
    const failed = await math.call("fail", { code: "Overdrawn", message: "balance is 0" }).catch((e) => e);
    assert.ok(failed instanceof RemoteError, String(failed));
    assert.equal(failed.remoteCode, "Overdrawn");
    assert.equal(failed.remoteMessage, "balance is 0");
    assert.match(failed.message, /math\.fail failed on the server: balance is 0 \[Overdrawn\]/);
    const unknown = await math.call("mul", {}).catch((e) => e);
    assert.ok(unknown instanceof RemoteError, String(unknown));
    assert.equal(unknown.remoteCode, "UnknownMethod");

    const statA = await bridgeA.stop();
    const statB = await bridgeB.stop();
    assert.deepEqual(
      [statA.routes[0].mode, statA.routes[0].forwarded, statA.routes[0].failed],
      ["service", 3, 4],
    );
    assert.deepEqual([statB.routes[0].forwarded, statB.routes[0].failed], [3, 2]);
  },
});

Deno.test({
  name:
    "bridge, services: a plain NATS client calls and streams with standard msgpack, and gets standard msgpack back",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await Sides.start();
    await sides.b.spawn("rpc_server.ts", SERVICE);
    const { connect: natsConnect, headers } = await import("npm:nats@2.29.3");
    const nc = await natsConnect({ servers: sides.two.server.url });
    try {
      const str = (s: string) => [0xa0 | s.length, ...new TextEncoder().encode(s)];
      const call = async (method: string, args: number[]) => {
        const h = headers();
        h.set("Ferry-Method", method);
        return await nc.request("t.math", Uint8Array.from(args), { headers: h, timeout: CALL_TIMEOUT_MS });
      };
      // {n: 5} as any msgpack library writes it: a map, not msgpackr's record extension (d4 72).
      const n5 = [0x81, ...str("n"), 0x05];
      const echoed = await within(call("echo", n5), "a plain client's call");
      assert.equal(echoed.headers?.get("Ferry-Status") ?? "ok", "ok");
      // {value: {n: 5}, headers: {}, attempt: 0}: maps whose keys are strings, byte for byte.
      assert.deepEqual(
        [...echoed.data],
        [0x83, ...str("value"), ...n5, ...str("headers"), 0x80, ...str("attempt"), 0x00],
      );
      // A handler's error: the payload { code, name, message } is a standard map too.
      const failed = await call("fail", [
        0x82,
        ...str("code"),
        ...str("Dry"),
        ...str("message"),
        ...str("m"),
      ]);
      assert.equal(failed.headers?.get("Ferry-Status"), "Remote");
      assert.deepEqual(
        [...failed.data],
        [
          0x83,
          ...str("code"),
          ...str("Dry"),
          ...str("name"),
          ...str("Error"),
          ...str("message"),
          ...str("m"),
        ],
      );

      // A streamed call: its arguments read as an object (a Map would give no `n`, and no items).
      const inbox = nc.subscribe("_INBOX.plain.count");
      const h = headers();
      h.set("Ferry-Method", "count");
      h.set("Ferry-Window", "8");
      nc.publish("t.math", Uint8Array.of(0x81, ...str("n"), 0x03), {
        headers: h,
        reply: "_INBOX.plain.count",
      });
      const got: [string, number[]][] = [];
      for await (const m of inbox) {
        const status = m.headers?.get("Ferry-Status") ?? "";
        if (status !== "Beat") got.push([status, [...m.data]]);
        if (status === "End") break;
      }
      assert.deepEqual(got, [["Start", []], ["", [0x00]], ["", [0x01]], ["", [0x02]], ["End", []]]);
    } finally {
      await nc.close();
    }
  },
});

/** Takes `n` items of `stream` by hand (a `for await` would cancel it when left). */
async function take<T>(stream: AsyncIterator<T>, n: number, what: string): Promise<T[]> {
  const items: T[] = [];
  for (let i = 0; i < n; i++) {
    const next = await within(stream.next(), `${what}: item ${i}`);
    assert.equal(next.done, false, `${what} ended after ${i} items`);
    items.push(next.value);
  }
  return items;
}

/** Takes the stream's items, each the next number from `from`, until it fails; returns the error. */
async function errorAfterItems(stream: AsyncIterator<number>, from: number): Promise<unknown> {
  for (let i = from;; i++) {
    const failed = await within(stream.next().then((n) => assert.equal(n.value, i), (e) => e), "the stream");
    if (failed !== undefined) return failed;
  }
}

Deno.test({
  name: "bridge, services: a streamed call on A gets B's items whole and in order, then its end",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await Sides.start();
    const { b, math, bridgeA, bridgeB } = sides;
    await b.spawn("rpc_server.ts", SERVICE);

    const items: number[] = [];
    await within(
      (async () => {
        for await (const i of math.stream<number>("count", { n: 500 })) items.push(i);
      })(),
      "a stream of 500 items across",
    );
    assert.deepEqual(items, Array.from({ length: 500 }, (_, i) => i));
    // Items larger than one batch of NATS messages, with the caller's headers, and a unary call after.
    const padded: string[] = [];
    for await (const s of math.stream<string>("padded", { n: 40, size: 30_000 }, { window: 4 })) {
      padded.push(s);
    }
    assert.deepEqual(padded.map((s) => [s.length, parseInt(s)]), padded.map((_, i) => [30_000, i]));
    assert.equal(await math.call("add", { a: 2, b: 2 }), 4);

    const statA = await bridgeA.stop();
    const statB = await bridgeB.stop();
    assert.deepEqual([statA.routes[0].forwarded, statA.routes[0].failed], [3, 0]);
    assert.deepEqual([statB.routes[0].forwarded, statB.routes[0].failed], [3, 0]);
  },
});

Deno.test({
  name:
    "bridge, services: a stream whose handler throws gives A the items before it, then RemoteError with its code",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await Sides.start();
    const { b, math } = sides;
    await b.spawn("rpc_server.ts", SERVICE);

    const items: number[] = [];
    const failed = await within(
      (async () => {
        for await (const i of math.stream<number>("failStream", { after: 5 })) items.push(i);
      })().catch((e) => e),
      "a stream that fails on B",
    );
    assert.deepEqual(items, [0, 1, 2, 3, 4]);
    assert.ok(failed instanceof RemoteError, String(failed));
    assert.equal(failed.remoteCode, "Dry");
    assert.equal(failed.remoteMessage, "ran dry");
    // A method B's server does not have: the same RemoteError as locally, before any item.
    const unknown = await (async () => {
      for await (const _ of math.stream("nope")) assert.fail("an item of a method that does not exist");
    })().catch((e) => e);
    assert.ok(unknown instanceof RemoteError, String(unknown));
    assert.equal(unknown.remoteCode, "UnknownMethod");
  },
});

Deno.test({
  name: "bridge, services: A's caller leaving a stream early cancels the handler on B",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await Sides.start();
    const { b, math } = sides;
    using events = b.open("events", { mode: "async" });
    const server = await b.spawn("rpc_server.ts", SERVICE);

    const taken: number[] = [];
    for await (const i of math.stream<number>("ticks")) {
      taken.push(i);
      if (i === 9) break;
    }
    assert.deepEqual(taken, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // B's never-ending handler was stopped: its `finally` ran.
    assert.equal((await nextEvent(events, "B's handler cancelled")).cancelled, server.pid);
    // An abort cancels it too, and the route goes on serving.
    const abort = new AbortController();
    const aborted = await (async () => {
      for await (const i of math.stream<number>("ticks", undefined, { signal: abort.signal })) {
        if (i === 2) abort.abort(new Error("enough"));
      }
    })().catch((e) => e);
    assert.equal(aborted.message, "enough");
    assert.equal((await nextEvent(events, "B's handler cancelled by an abort")).cancelled, server.pid);
    assert.equal(await math.call("add", { a: 1, b: 2 }), 3);
  },
});

Deno.test({
  name: "bridge, services: a slow consumer on A holds B's handler back to a few windows of items",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await Sides.start();
    const { b, math } = sides;
    using events = b.open("events", { mode: "async" });
    await b.spawn("rpc_server.ts", SERVICE);

    const N = 200, WINDOW = 4;
    // B's local stream, the way between the bridges and A's local stream: a window each, and the
    // items in hand at either bridge.
    const AHEAD = 3 * WINDOW + 2;
    let produced = -1;
    const drain = () => {
      for (let e = events.tryRecv(); e !== undefined; e = events.tryRecv()) {
        const { produced: i } = e.data as { produced: number };
        assert.equal(i, produced + 1, "B's handler reported out of order");
        produced = i;
      }
    };
    const stream = math.stream<number>("produce", { n: N }, { window: WINDOW });
    assert.deepEqual(await take(stream, 1, "the slow stream"), [0]);
    // With one item taken, B's handler fills the windows and stops: wait for a window's worth.
    while (produced < WINDOW - 1) {
      const e = (await nextEvent(events, "B's handler filling the window")) as { produced: number };
      assert.equal(e.produced, produced + 1);
      produced = e.produced;
    }
    for (let i = 1; i < N; i++) {
      drain();
      assert.ok(produced <= i - 1 + AHEAD, `B's handler produced item ${produced} while A had taken ${i}`);
      assert.deepEqual(await take(stream, 1, "the slow stream"), [i]);
    }
    assert.equal((await within(stream.next(), "the slow stream's end")).done, true);
  },
});

Deno.test({
  name: "bridge, services: B's server killed mid-stream is PeerDiedError for A's caller, not a hang",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await Sides.start();
    const { b, math } = sides;
    using events = b.open("events", { mode: "async" });
    const doomed = await b.spawn("rpc_server.ts", SERVICE);

    const stream = math.stream<number>("holdStream", { n: 3 });
    assert.deepEqual(await take(stream, 3, "the held stream"), [0, 1, 2]);
    assert.equal((await nextEvent(events, "B's server holding the stream")).holding, doomed.pid);
    await doomed.kill();
    const died = await within(stream.next().catch((e) => e), "the stream after B's server died");
    assert.ok(died instanceof PeerDiedError, String(died));

    // A route goes on: a new server on B answers the next stream.
    await b.spawn("rpc_server.ts", SERVICE);
    const items: number[] = [];
    for await (const i of math.stream<number>("count", { n: 3 })) items.push(i);
    assert.deepEqual(items, [0, 1, 2]);
  },
});

Deno.test({
  name:
    "bridge, services: B's bridge killed mid-stream is A's PeerDiedError; no bridge on B is its TimeoutError",
  ignore: !HAVE_NATS,
  async fn() {
    // Short routes: a stream nobody takes is given up after 3 s.
    await using sides = await Sides.start({ a: 3000, b: 3000 });
    const { b, math, bridgeB } = sides;
    using events = b.open("events", { mode: "async" });
    const server = await b.spawn("rpc_server.ts", SERVICE);

    const stream = math.stream<number>("holdStream", { n: 2 });
    assert.deepEqual(await take(stream, 2, "the held stream"), [0, 1]);
    assert.equal((await nextEvent(events, "B's server holding the stream")).holding, server.pid);
    await bridgeB.kill();
    // A's next credit or heartbeat finds nobody at B's end of the call.
    const gone = await within(stream.next().catch((e) => e), "the stream after B's bridge died");
    assert.ok(gone instanceof PeerDiedError, String(gone));

    // No bridge answers the subject now: A's bridge asks again until its timeout, then gives up.
    const unanswered = await within(
      (async () => {
        for await (const _ of math.stream("count", { n: 1 })) assert.fail("an item with no bridge on B");
      })().catch((e) => e),
      "a stream nobody answers",
    );
    assert.ok(unanswered instanceof TimeoutError, String(unanswered));
  },
});

Deno.test({
  name:
    "bridge, services: A's bridge killed mid-stream is its caller's PeerDiedError, and B cancels the handler",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await Sides.start({ a: 3000, b: 3000 });
    const { b, math, bridgeA } = sides;
    using events = b.open("events", { mode: "async" });
    const server = await b.spawn("rpc_server.ts", SERVICE);

    const stream = math.stream<number>("ticks");
    assert.deepEqual(await take(stream, 3, "the endless stream"), [0, 1, 2]);
    await bridgeA.kill();
    // The items A's bridge had passed on still come, then the death of what held the call.
    const died = await errorAfterItems(stream, 3);
    assert.ok(died instanceof PeerDiedError, String(died));
    // B's bridge finds A's gone (NATS has nobody on its inbox; or, silent, after the route's
    // timeout) and cancels its local stream.
    assert.equal((await nextEvent(events, "B's handler cancelled")).cancelled, server.pid);
  },
});

for (const closing of ["A", "B"] as const) {
  Deno.test({
    name:
      `bridge, services: ${closing}'s bridge closing mid-stream is the caller's RemoteError ServerClosed, ` +
      "and cancels B's handler",
    ignore: !HAVE_NATS,
    async fn() {
      await using sides = await Sides.start();
      const { b, math } = sides;
      using events = b.open("events", { mode: "async" });
      const server = await b.spawn("rpc_server.ts", SERVICE);

      const stream = math.stream<number>("ticks");
      assert.deepEqual(await take(stream, 3, "the endless stream"), [0, 1, 2]);
      const stat = await (closing === "A" ? sides.bridgeA : sides.bridgeB).stop();
      assert.equal(stat.routes[0].inFlight, 0, `${closing}'s bridge closed with the stream still running`);
      const closed = await errorAfterItems(stream, 3);
      assert.ok(closed instanceof RemoteError, String(closed));
      assert.equal(closed.remoteCode, "ServerClosed");
      assert.equal((await nextEvent(events, "B's handler cancelled")).cancelled, server.pid);
    },
  });
}

Deno.test({
  name:
    "bridge, services: B's server killed mid-call is A's PeerDiedError, and an idempotent call is sent again",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await Sides.start();
    const { b, math } = sides;
    using events = b.open("events", { mode: "async" });
    const doomed = await b.spawn("rpc_server.ts", SERVICE);

    const call = follow(math.call("hold"));
    assert.equal((await nextEvent(events, "B's server holding the call")).holding, doomed.pid);
    assert.equal(call.settled, false);
    await doomed.kill();
    const died = await within(call.promise.catch((e) => e), "the call after B's server died");
    assert.ok(died instanceof PeerDiedError, String(died));

    // An idempotent call is sent again by A's client, and the server B runs next answers it.
    const retried = follow(math.call("hold", undefined, { idempotent: true }));
    const second = await b.spawn("rpc_server.ts", SERVICE);
    assert.equal((await nextEvent(events, "B's new server holding the call")).holding, second.pid);
    await second.tell("go");
    assert.equal(await within(retried.promise, "the call to B's new server"), second.pid);
  },
});

Deno.test({
  name: "bridge, services: no server on B, or no bridge on B: A's call ends in TimeoutError, not a hang",
  ignore: !HAVE_NATS,
  async fn() {
    // The routes give up long before the caller would: what ends its call is the bridges' answer.
    await using sides = await Sides.start({ a: 3000, b: 1000 });
    const { math, bridgeA, bridgeB } = sides;

    // B's bridge calls B's `math`, which nobody serves: its call times out there, and says so.
    const unserved = await within(
      math.call("add", { a: 1, b: 1 }).catch((e) => e),
      "a call nobody serves on B",
    );
    assert.ok(unserved instanceof TimeoutError, String(unserved));

    // No bridge answers t.math at all: A's bridge asks again until its timeout, then gives up.
    await bridgeB.stop();
    const unanswered = await within(
      math.call("add", { a: 1, b: 1 }).catch((e) => e),
      "a call nobody answers",
    );
    assert.ok(unanswered instanceof TimeoutError, String(unanswered));
    const statA = await bridgeA.stop();
    assert.equal(statA.routes[0].failed, 2);
    assert.ok(statA.routes[0].retries > 0, "A's bridge never met 'no responders'");
  },
});

Deno.test({
  name:
    "bridge, services: a far side that breaks the stream's protocol, or a bad streamed call, is a typed error",
  ignore: !HAVE_NATS,
  async fn() {
    // A's bridge sends math's calls on t.math, where this test answers them as a faulty bridge
    // would; B's bridge answers t.b by calling B's math.
    await using two = await TwoSides.start(
      ["--service-out", `${SERVICE}=t.math`, "--timeout", String(CALL_TIMEOUT_MS)],
      ["--service-in", `t.b=${SERVICE}`, "--timeout", String(CALL_TIMEOUT_MS)],
    );
    using math = connect(SERVICE, { prefix: two.a.prefix, timeout: 10 * CALL_TIMEOUT_MS });
    const { connect: natsConnect, headers } = await import("npm:nats@2.29.3");
    const nc = await natsConnect({ servers: two.server.url });
    try {
      const send = (to: string, h: Record<string, string>, data = new Uint8Array(0)) => {
        const hs = headers();
        for (const [k, v] of Object.entries(h)) hs.set(k, v);
        nc.publish(to, data, { headers: hs });
      };
      const one = new Uint8Array([0x01]); // msgpack 1
      nc.subscribe("t.math", {
        callback: (_, m) => {
          const method = m.headers?.get("Ferry-Method");
          send(m.reply!, { "Ferry-Status": "Start" });
          if (method === "gap") {
            send(m.reply!, { "Ferry-Seq": "1" }, one);
            send(m.reply!, { "Ferry-Seq": "3" }, one);
          } else {
            // Items far past the credits (the caller's window is 2, and it takes one item).
            for (let i = 1; i <= 20; i++) send(m.reply!, { "Ferry-Seq": String(i) }, one);
          }
        },
      });
      const failure = async (method: string) => {
        const stream = math.stream(method, undefined, { window: 2 });
        const items: unknown[] = [];
        for (;;) {
          const next = await within(stream.next().catch((e) => e), `the stream '${method}'`);
          if (!(next instanceof Error)) {
            items.push(next.value);
            continue;
          }
          assert.ok(next instanceof RemoteError, String(next));
          return { items, code: next.remoteCode };
        }
      };
      assert.deepEqual(await failure("gap"), { items: [1], code: "ItemsLost" });
      const flood = await failure("flood");
      assert.equal(flood.code, "CreditExceeded");
      assert.ok(
        flood.items.length <= 5,
        `A's bridge passed on ${flood.items.length} items beyond its credits`,
      );

      // A streamed call to B's bridge with a window that is not one: answered with InvalidOption.
      for (const window of ["0", "many", "65537"]) {
        const h = headers();
        h.set("Ferry-Method", "count");
        h.set("Ferry-Window", window);
        const reply = await nc.request("t.b", new Uint8Array(0), { headers: h, timeout: CALL_TIMEOUT_MS });
        assert.equal(reply.headers?.get("Ferry-Status"), "InvalidOption", window);
        assert.match(reply.headers?.get("Ferry-Error") ?? "", /Ferry-Window must be an integer/);
      }
    } finally {
      await nc.close();
    }
  },
});

Deno.test("bridge, services: a bad service route is a typed error before anything is connected or opened", async () => {
  await using s = new Scope();
  // No server listens there: a route that got past its checks would fail with NatsConnectionError.
  const nats = { servers: `nats://127.0.0.1:${freePort()}`, maxReconnectAttempts: 0 };
  const start = (services: ServiceRoute[]) => Bridge.start({ nats, prefix: s.prefix, services });
  const ok = { service: SERVICE, subject: "t.math", direction: "out" } as const;
  await assert.rejects(start([{ ...ok, direction: "both" as "out" }]), InvalidOptionError);
  await assert.rejects(start([{ ...ok, service: "no/slash" }]), InvalidNameError);
  await assert.rejects(start([{ ...ok, subject: "t.*" }]), InvalidOptionError);
  await assert.rejects(start([{ ...ok, window: 33 }]), InvalidOptionError);
  await assert.rejects(start([{ ...ok, timeout: 0 }]), InvalidOptionError);
  await assert.rejects(start([ok, { ...ok, direction: "in" }]), /loop/);
  await assert.rejects(start([ok, ok]), /twice/);
  await assert.rejects(start([ok]), NatsConnectionError);
  assert.deepEqual(segmentsOf(s.prefix), [], "a refused bridge opened a channel");
});

Deno.test({
  name:
    "bridge, services: arguments or stream items larger than the NATS server takes are the caller's RemoteError MessageTooLarge at once, and smaller calls still cross",
  ignore: !HAVE_NATS,
  async fn() {
    // A server that takes at most 8 KiB per message (nats-server's own default is 1 MB, above what
    // a call can carry locally, 64 KiB).
    const dir = await Deno.makeTempDir({ prefix: "ferry_nats_conf_" });
    try {
      const conf = `${dir}/small.conf`;
      await Deno.writeTextFile(conf, "max_payload: 8192\n");
      await using sides = await Sides.start(undefined, ["-c", conf]);
      await sides.b.spawn("rpc_server.ts", SERVICE);
      const big = new Uint8Array(16 * 1024).fill(7);
      // Well before the route's 20 s timeout (within's own bound is shorter).
      const refused = await within(
        sides.math.call("echo", big).catch((e) => e),
        "the too-large call",
        10_000,
      );
      assert.ok(refused instanceof RemoteError, String(refused));
      assert.equal(refused.remoteCode, "MessageTooLarge");
      assert.deepEqual(await within(sides.math.call("add", { a: 2, b: 3 }), "a call after it"), 5);
      // A streamed call: its arguments too large on A, or an item too large on B.
      const drain = async (it: AsyncIterable<unknown>) => {
        const got: unknown[] = [];
        try {
          for await (const item of it) got.push(item);
        } catch (e) {
          return { got, e };
        }
        return { got, e: undefined };
      };
      const streamed = await within(
        drain(sides.math.stream("count", { n: 1, pad: big })),
        "a too-large stream",
      );
      assert.ok(streamed.e instanceof RemoteError, String(streamed.e));
      assert.equal(streamed.e.remoteCode, "MessageTooLarge");
      const items = await within(
        drain(sides.math.stream("padded", { n: 3, size: 16 * 1024 })),
        "large items",
      );
      assert.deepEqual(items.got, []);
      assert.ok(items.e instanceof RemoteError, String(items.e));
      assert.equal(items.e.remoteCode, "MessageTooLarge");
      const statA = await sides.bridgeA.stop();
      assert.deepEqual([statA.routes[0].forwarded, statA.routes[0].failed], [1, 3]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * Sends `method` on t.math from a plain NATS client, as A's bridge would, with `timeout` as its
 * Ferry-Timeout; `reply` is the answer's promise.
 */
async function plainCall(url: string, method: string, timeout: number): Promise<{ reply: Promise<Msg> }> {
  const { connect: natsConnect, headers } = await import("npm:nats@2.29.3");
  const nc = await natsConnect({ servers: url });
  const h = headers();
  h.set("Ferry-Method", method);
  h.set("Ferry-Timeout", String(timeout));
  const reply = nc.request("t.math", new Uint8Array(0), { headers: h, timeout: 2 * timeout });
  return { reply: reply.finally(() => nc.close()) };
}

Deno.test({
  name:
    "bridge, services: calls queued on B's bridge until their callers gave up are answered as timed out, not run",
  ignore: !HAVE_NATS,
  async fn() {
    // A's route gives each call 2 s; B's bridge runs one call at a time.
    await using sides = await Sides.start({ a: 2000, b: CALL_TIMEOUT_MS }, [], ["--window", "1"]);
    const { b, math, bridgeB } = sides;
    using events = b.open("events", { mode: "async" });
    const server = await b.spawn("rpc_server.ts", SERVICE);

    // A call that holds B's only place until told: sent as a plain NATS client, with a long timeout.
    const held = await plainCall(sides.two.server.url, "hold", 60_000);
    assert.equal((await nextEvent(events, "B's server holding the call")).holding, server.pid);
    // Calls (and a stream) from A queue behind it on B's bridge; their callers give up at 2 s.
    const N = 8;
    const calls = Array.from({ length: N }, (_, i) => math.call("mark", i).catch((e) => e));
    const stream = (async () => {
      for await (const _ of math.stream("produce", { n: 1 })) assert.fail("an item of a call given up");
    })().catch((e) => e);
    for (const failed of await within(Promise.all([...calls, stream]), "the queued callers")) {
      assert.ok(failed instanceof TimeoutError, String(failed));
    }
    // B's place is free again: the calls given up are taken from the queue, then a new call.
    await server.tell("go");
    assert.equal((await within(held.reply, "the held call")).headers?.get("Ferry-Status") ?? "ok", "ok");
    assert.equal(await within(math.call("mark", "last"), "a call after the queue"), "last");
    const started: unknown[] = [];
    for (;;) {
      const e = await nextEvent(events, "B's server starting calls");
      if (e.started as unknown === "last") break;
      started.push(e);
    }
    assert.deepEqual(started, [], "B's server ran calls whose callers had given up");
    const statB = await bridgeB.stop();
    assert.deepEqual([statB.routes[0].forwarded, statB.routes[0].failed], [2, N + 1]);
  },
});

Deno.test({
  name:
    "bridge, services: B's bridge closing with calls queued stops within its closeTimeout; their callers get RemoteError ServerClosed",
  ignore: !HAVE_NATS,
  async fn() {
    const conf = await Deno.makeTempFile({ prefix: "ferry_bridge_conf_", suffix: ".json" });
    try {
      await Deno.writeTextFile(conf, JSON.stringify({ closeTimeout: 500 }));
      // B's bridge runs one call at a time; the routes' timeout (20 s) is longer than the hang guard.
      await using sides = await Sides.start(undefined, [], ["--window", "1", "--config", conf]);
      const { b, math, bridgeB } = sides;
      using events = b.open("events", { mode: "async" });
      const server = await b.spawn("rpc_server.ts", SERVICE);
      // Sees every call on the subject besides B's bridge (not in its queue group).
      const { connect: natsConnect } = await import("npm:nats@2.29.3");
      const nc = await natsConnect({ servers: sides.two.server.url });
      try {
        const seen = nc.subscribe("t.math");
        await nc.flush(); // subscribed before the first call
        // Held on B until B's bridge gives up on it (closeTimeout); how it ends is not this test's.
        math.call("hold").catch(() => {});
        assert.equal((await nextEvent(events, "B's server holding the call")).holding, server.pid);
        const N = 20;
        const calls = Array.from({ length: N }, (_, i) => math.call("add", { a: i, b: 1 }).catch((e) => e));
        const stream = (async () => {
          for await (const _ of math.stream("count", { n: 1 })) assert.fail("an item of a refused call");
        })().catch((e) => e);
        // Once the NATS server passed every call on to this subscription, it passed them to B's
        // bridge too, ahead of anything B's bridge sends it later (its unsubscribe when closing).
        let count = 0;
        await within(
          (async () => {
            for await (const _ of seen) if (++count === N + 2) break;
          })(),
          "the calls on the subject",
        );
        const statB = await within(bridgeB.stop(), "B's bridge closing", 10_000);
        for (const refused of await within(Promise.all([...calls, stream]), "the queued callers")) {
          assert.ok(refused instanceof RemoteError, String(refused));
          assert.equal(refused.remoteCode, "ServerClosed");
        }
        assert.ok(statB.routes[0].failed >= N + 1, JSON.stringify(statB.routes[0]));
      } finally {
        await nc.close();
      }
    } finally {
      await Deno.remove(conf);
    }
  },
});

Deno.test({
  name: "bridge, services: a reply larger than 64 KiB crosses to a caller whose replyMaxMessageSize takes it",
  ignore: !HAVE_NATS,
  async fn() {
    await using sides = await Sides.start();
    await sides.b.spawn("rpc_server.ts", SERVICE);
    using big = connect(SERVICE, {
      prefix: sides.a.prefix,
      timeout: 10 * CALL_TIMEOUT_MS,
      replyMaxMessageSize: 1 << 20,
    });
    const reply = await within(big.call<Uint8Array>("sized", { n: 200_000 }), "a 200 KB reply");
    assert.ok(reply instanceof Uint8Array, String(reply));
    assert.equal(reply.length, 200_000);
    assert.ok(reply.every((x) => x === 7));
  },
});
