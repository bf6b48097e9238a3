// The bridge: one NATS connection and the routes of one local namespace. It is built only on the
// public channel API: to local producers it is one more receiver, to local receivers one more
// sender, so code on either machine keeps the plain channel API. See the README, "Across machines".

import type { JetStreamClient, JetStreamManager, NatsConnection } from "npm:nats@2.29.3";
import { InvalidOptionError } from "../../mod.ts";
import { JetStreamError, NatsConnectionError } from "./errors.ts";
import { loadNats, natsModule } from "./nats.ts";
import { HighWater, openHighWaterBucket } from "./highwater.ts";
import { InboundRoute } from "./inbound.ts";
import {
  type BridgeOptions,
  checkDistinct,
  type CheckedIn,
  checkIn,
  checkOut,
  checkService,
  checkServicesDistinct,
  checkTopic,
  routeList,
} from "./options.ts";
import { ServiceAnswerer, ServiceCaller } from "./services.ts";
import { TopicForwarder } from "./topics.ts";
import { noResponders, OutboundRoute, text } from "./outbound.ts";
import type { BridgeStat } from "./stat.ts";
import { atMost } from "./window.ts";

const PREFIX = /^[A-Za-z0-9_!-]{1,100}$/;
const construct = Symbol("ferry.bridge");

/** What a bridge runs: its routes, each with its stat, started once and closed once. */
type Route = OutboundRoute | InboundRoute | TopicForwarder | ServiceCaller | ServiceAnswerer;

/**
 * Connects local channels to NATS. Out routes forward a local channel's messages to a subject (ack
 * mode as NATS requests, async mode through JetStream); in routes deliver a subject's messages into
 * a local channel; topic routes carry pub/sub topics to and from subjects; service routes carry
 * request/response calls (the callers' side forwards them, the servers' side answers them). Start
 * one per machine and namespace:
 *
 * ```ts
 * import { Bridge } from "./mod.ts";
 * await using bridge = await Bridge.start({
 *   nats: { servers: "nats://10.0.0.2:4222", user: "ferry", pass: "..." },
 *   out: [{ channel: "jobs", subject: "jobs", mode: "ack" }],
 *   in: [{ subject: "results", channel: "results", mode: "async" }],
 * });
 * console.log(bridge.stat());
 * ```
 */
export class Bridge implements AsyncDisposable {
  /** The local namespace it serves. */
  readonly prefix: string;
  /**
   * Resolves when the NATS connection has ended: undefined after `close()`, or the error that
   * ended it for good (credentials refused, reconnect attempts used up). Routes stop then; what they
   * held goes back to the local queues when the bridge is closed.
   */
  readonly closed: Promise<Error | undefined>;
  readonly #nc: NatsConnection;
  readonly #routes: Route[];
  readonly #closeTimeout: number;
  #connected = true;
  #disconnects = 0;
  #reconnects = 0;
  #closing: Promise<void> | undefined;

  /**
   * Connects to NATS, makes sure the JetStream streams and consumers of async routes exist (and,
   * for async in routes, the KV bucket `ferry_bridge` where each keeps the bound that lets it mark
   * JetStream's unannounced repeats: see highwater.ts), opens the local channels and starts
   * forwarding. Throws InvalidOptionError (a bad route),
   * NatsConnectionError (no server, refused credentials), JetStreamError (JetStream off, or a stream
   * or consumer that cannot be made as configured), or a channel's open error.
   */
  static async start(options: BridgeOptions): Promise<Bridge> {
    const prefix = options.prefix ?? "ferry";
    if (typeof prefix !== "string" || !PREFIX.test(prefix)) {
      throw new InvalidOptionError(`bridge prefix ${JSON.stringify(prefix)} is not a valid namespace prefix`);
    }
    const out = routeList("out", options.out).map(checkOut);
    const inn = routeList("in", options.in).map((r, i) => checkIn(r, i, prefix));
    const topics = routeList("topics", options.topics).map(checkTopic);
    const services = routeList("services", options.services).map(checkService);
    checkDistinct(out, inn, topics);
    checkServicesDistinct(services);
    const closeTimeout = options.closeTimeout ?? 5000;
    if (typeof closeTimeout !== "number" || !(closeTimeout >= 0)) {
      throw new InvalidOptionError(`closeTimeout must be a number of ms >= 0, not ${closeTimeout}`);
    }
    for (const [i, r] of inn.entries()) {
      if (r.mode === "async" && r.timeout >= r.ackWait * 1000) {
        throw new InvalidOptionError(
          `bridge in[${i}]: timeout ${r.timeout} ms must be shorter than ackWait (${r.ackWait} s), or ` +
            "JetStream would deliver a message again while its local send still waits",
        );
      }
    }
    // noAsyncTraces: the client otherwise captures a stack (a new Error) for every request and
    // JetStream publish, in case it fails: 6-15 µs of a route's per-message CPU, measured.
    const natsOptions = {
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      noAsyncTraces: true,
      ...options.nats,
    };
    const { connect } = await loadNats();
    let nc: NatsConnection;
    try {
      nc = await connect(natsOptions);
    } catch (e) {
      throw new NatsConnectionError(
        `cannot connect to NATS at ${JSON.stringify(natsOptions.servers ?? "127.0.0.1:4222")}: ${text(e)}; ` +
          "check that nats-server runs there and that the credentials and TLS options are right",
        { cause: e },
      );
    }
    const routes: Route[] = [];
    try {
      let js: JetStreamClient | undefined;
      const streams = new Map<string, string>();
      if ([...out, ...inn].some((r) => r.mode === "async")) {
        let jsm: JetStreamManager;
        try {
          jsm = await nc.jetstreamManager();
        } catch (e) {
          throw new JetStreamError(
            `JetStream is not available on this NATS server (${text(e)}); async routes need it: ` +
              "start nats-server with -js (and -sd <dir> to keep messages across restarts)",
            { cause: e },
          );
        }
        js = nc.jetstream();
        for (const r of [...out, ...inn]) {
          if (r.mode !== "async") continue;
          streams.set(r.subject, await ensureStream(jsm, r.subject, r.stream));
        }
        for (const r of inn) {
          if (r.mode === "async") await ensureConsumer(jsm, streams.get(r.subject)!, r);
        }
      }
      for (const r of out) routes.push(new OutboundRoute(r, prefix, nc, streams.get(r.subject)));
      const asyncIn = inn.filter((r) => r.mode === "async");
      const bucket = asyncIn.length > 0 ? await openHighWaterBucket(js!) : undefined;
      for (const r of inn) {
        const stream = streams.get(r.subject);
        // The bound is raised a few pull batches ahead: one KV write per 4 windows of messages.
        const highWater = r.mode === "async"
          ? new HighWater(bucket!, stream!, r.durable, 4 * r.window)
          : undefined;
        routes.push(new InboundRoute(r, prefix, nc, js, stream, highWater));
      }
      for (const r of topics) routes.push(new TopicForwarder(r, prefix, nc));
      for (const r of services) {
        routes.push(
          r.direction === "out" ? new ServiceCaller(r, prefix, nc) : new ServiceAnswerer(r, prefix, nc),
        );
      }
    } catch (e) {
      await Promise.all(routes.map((r) => r.close(0)));
      await nc.close();
      throw e;
    }
    const bridge = new Bridge(construct, prefix, nc, routes, closeTimeout);
    // The routes' subscriptions are known to the server once this returns: a message published on
    // a subject right after start() reaches them.
    await nc.flush().catch(() => {});
    return bridge;
  }

  private constructor(
    key: symbol,
    prefix: string,
    nc: NatsConnection,
    routes: Route[],
    closeTimeout: number,
  ) {
    if (key !== construct) throw new TypeError("use Bridge.start()");
    this.prefix = prefix;
    this.#nc = nc;
    this.#routes = routes;
    this.#closeTimeout = closeTimeout;
    this.#watch();
    this.closed = nc.closed().then((e) =>
      e === undefined || e === null ? undefined : new NatsConnectionError(
        `the NATS connection ended: ${text(e)}`,
        { cause: e },
      )
    );
    for (const r of routes) r.start();
  }

  async #watch(): Promise<void> {
    for await (const s of this.#nc.status()) {
      if (s.type === "disconnect") {
        this.#connected = false;
        this.#disconnects++;
      } else if (s.type === "reconnect") {
        this.#connected = true;
        this.#reconnects++;
      }
    }
  }

  /** What each route forwarded, holds, failed and may have duplicated, and the connection's state. */
  stat(): BridgeStat {
    return {
      prefix: this.prefix,
      connected: this.#connected && !this.#nc.isClosed(),
      server: this.#nc.getServer(),
      disconnects: this.#disconnects,
      reconnects: this.#reconnects,
      routes: this.#routes.map((r) => ({ ...r.stat })),
    };
  }

  /**
   * Stops taking messages, waits up to `closeTimeout` for those in flight, closes the channels
   * (messages still held go back to their local queue, marked `redelivered`, for the next bridge)
   * and drains the NATS connection. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all(this.#routes.map((r) => r.close(this.#closeTimeout)));
      // A drain waits for the server: with the connection lost it would wait for a reconnect that
      // may never come, so it gets closeTimeout too, and the connection is then closed as it is.
      if (!this.#nc.isClosed()) {
        await atMost(this.#nc.drain().catch(() => {}), this.#closeTimeout);
        if (!this.#nc.isClosed()) await this.#nc.close().catch(() => {});
      }
      await this.closed;
    })();
    return this.#closing;
  }

  /** `await using bridge = await Bridge.start(...)` closes it. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The stream an async route publishes to or consumes from: the named one, the one that takes the subject, or a new one. */
async function ensureStream(
  jsm: JetStreamManager,
  subject: string,
  name: string | undefined,
): Promise<string> {
  if (name === undefined) {
    try {
      return await jsm.streams.find(subject);
    } catch (e) {
      if (!/no stream matches/i.test(text(e))) {
        throw jetStreamError(`looking up the stream of '${subject}'`, e);
      }
    }
  } else {
    try {
      await jsm.streams.info(name);
      return name;
    } catch (e) {
      if (!/not found/i.test(text(e))) throw jetStreamError(`looking up stream '${name}'`, e);
    }
  }
  const stream = name ?? `FERRY_${subject.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  try {
    // File storage: messages survive a server restart (with -sd <dir>). Two bridges making the
    // same stream at once is fine: JetStream takes an identical add as a no-op.
    await jsm.streams.add({ name: stream, subjects: [subject], storage: natsModule().StorageType.File });
  } catch (e) {
    throw jetStreamError(`creating stream '${stream}' for '${subject}'`, e);
  }
  return stream;
}

async function ensureConsumer(jsm: JetStreamManager, stream: string, r: CheckedIn): Promise<void> {
  const { AckPolicy, DeliverPolicy, nanos } = natsModule();
  try {
    await jsm.consumers.add(stream, {
      durable_name: r.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: r.subject,
      ack_wait: nanos(r.ackWait * 1000),
    });
  } catch (e) {
    throw jetStreamError(
      `creating durable consumer '${r.durable}' on stream '${stream}' (an existing one with other ` +
        "settings is refused: remove it, or name another with `durable`)",
      e,
    );
  }
}

function jetStreamError(what: string, e: unknown): JetStreamError {
  const hint = noResponders(e) ? " (is JetStream enabled? nats-server -js)" : "";
  return new JetStreamError(`${what}: ${text(e)}${hint}`, { cause: e });
}
