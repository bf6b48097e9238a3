// Request/response across the bridge: callers on "machine" A (this process), a server of the
// service on B (a child process), a bridge process on each side, through a real nats-server.
// Skipped, with a note, where nats-server is not installed (.ci/run installs it, so CI runs these).

import assert from "node:assert/strict";
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

  static async start(
    timeouts = { a: CALL_TIMEOUT_MS, b: CALL_TIMEOUT_MS },
    serverArgs: string[] = [],
  ): Promise<Sides> {
    const two = await TwoSides.start(
      ["--service-out", `${SERVICE}=t.math`, "--timeout", String(timeouts.a)],
      ["--service-in", `t.math=${SERVICE}`, "--timeout", String(timeouts.b)],
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
      big: 2n ** 70n,
      bytes: new Uint8Array([1, 2, 3]),
      list: [1, "two"],
    };
    assert.deepEqual(
      await math.call("echo", value, { headers: { traceparent: "00-abc-01" } }),
      { value, headers: { traceparent: "00-abc-01" }, attempt: 0 },
    );

    // A handler's error is the caller's RemoteError with the handler's code and message.
    const failed = await math.call("fail", { code: "Overdrawn", message: "balance is 0" }).catch((e) => e);
    assert.ok(failed instanceof RemoteError, String(failed));
    assert.equal(failed.remoteCode, "Overdrawn");
    assert.equal(failed.remoteMessage, "balance is 0");
    assert.match(failed.message, /math\.fail failed on the server: balance is 0 \[Overdrawn\]/);
    const unknown = await math.call("mul", {}).catch((e) => e);
    assert.ok(unknown instanceof RemoteError, String(unknown));
    assert.equal(unknown.remoteCode, "UnknownMethod");

    // Streamed calls do not cross: the caller is told so, at once.
    const streamed = await (async () => {
      for await (const _ of math.stream("count", { n: 2 })) assert.fail("a streamed item crossed");
    })().catch((e) => e);
    assert.ok(streamed instanceof RemoteError, String(streamed));
    assert.equal(streamed.remoteCode, "StreamNotBridged");

    const statA = await bridgeA.stop();
    const statB = await bridgeB.stop();
    assert.deepEqual(
      [statA.routes[0].mode, statA.routes[0].forwarded, statA.routes[0].failed],
      ["service", 3, 3],
    );
    assert.deepEqual([statB.routes[0].forwarded, statB.routes[0].failed], [3, 2]);
  },
});

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
    "bridge, services: arguments larger than the NATS server takes are the caller's RemoteError MessageTooLarge at once, and smaller calls still cross",
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
      const statA = await sides.bridgeA.stop();
      assert.deepEqual([statA.routes[0].forwarded, statA.routes[0].failed], [1, 1]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
