// An in route: messages from NATS are sent into a local channel, so local receivers see plain
// ferry messages, a possible repeat marked `msg.redelivered`. Ack routes answer the origin's request only after a local receiver released the
// message (or with the error the local send raised); async routes acknowledge to JetStream only
// once the message is in shared memory, where it outlives this bridge.

import type {
  ConsumerMessages,
  JetStreamClient,
  JsMsg,
  Msg,
  NatsConnection,
  Subscription,
} from "npm:nats@2.29.3";
import { Channel, FerryError } from "../../mod.ts";
import type { HighWater } from "./highwater.ts";
import type { CheckedIn } from "./options.ts";
import { text } from "./outbound.ts";
import { newRouteStat, type RouteStat } from "./stat.ts";
import { atMost, drainWithin, pause } from "./window.ts";
import { type Arrival, arrival, BUSY, envelope, HEADER, replyHeaders } from "./wire.ts";

/**
 * @internal An ack route (and a service route) answers this long before the origin stops waiting, so that a release that comes at
 * the last moment still reaches the origin in time and is not counted there as a failure.
 */
export const REPLY_MARGIN_MS = 100;
/** An ack reply's payload: its outcome is in the headers. */
const EMPTY = new Uint8Array(0);
/** After a consumer failed (server restarting, stream missing), the pause before trying again. */
const CONSUMER_RETRY_MS = 250;
/** A message a local send could not take is offered again by JetStream after this long. */
const NAK_DELAY_MS = 1000;

/** @internal */
export class InboundRoute {
  readonly stat: RouteStat;
  readonly #route: CheckedIn;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient | undefined;
  readonly #stream: string | undefined;
  readonly #channel: Channel<Uint8Array>;
  readonly #stop = new AbortController();
  #subscription: Subscription | undefined;
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #pending = new Set<Promise<void>>();
  /** Async routes: messages in the channel whose JetStream acks go out at the end of this turn. */
  readonly #acks: JsMsg[] = [];
  /** Async routes: the highest stream sequence delivered by this process. */
  #highestSeq = 0;
  /**
   * Async routes: the bound found at the consumer's (re)start, at or above every stream sequence
   * that earlier processes (or this one, before a restart of the consumer) may have delivered.
   */
  #deliveredBefore = 0;
  readonly #highWater: HighWater | undefined;

  constructor(
    route: CheckedIn,
    prefix: string,
    nc: NatsConnection,
    js: JetStreamClient | undefined,
    stream: string | undefined,
    highWater?: HighWater,
  ) {
    this.#route = route;
    this.#nc = nc;
    this.#js = js;
    this.#stream = stream;
    this.#highWater = highWater;
    this.stat = newRouteStat("in", route);
    this.#channel = Channel.open<Uint8Array>(route.channel, {
      ...route.open,
      prefix,
      codec: "raw",
      mode: route.mode,
      // Each ack send in flight holds one of this handle's slots: the window, enforced by ferry.
      slots: route.mode === "ack" ? route.window : 32,
      timeout: route.timeout,
    });
  }

  start(): void {
    if (this.#route.mode === "ack") {
      this.#subscription = this.#nc.subscribe(this.#route.subject, {
        queue: this.#route.queue,
        callback: (err, m) => {
          if (err) {
            this.stat.lastError = text(err);
            return;
          }
          if (this.stat.inFlight >= this.#route.window) {
            // More at once than the window: each would hold its message in this process until a
            // local receiver took it. Refused unread; the origin bridge asks again (outbound.ts).
            this.stat.retries++;
            m.respond(EMPTY, {
              headers: replyHeaders(BUSY, `more than ${this.#route.window} messages in flight`),
            });
            return;
          }
          const p = this.#answer(m);
          this.#pending.add(p);
          p.finally(() => this.#pending.delete(p));
        },
      });
    } else {
      this.#loop = this.#consume();
    }
  }

  #payload(a: Arrival): Uint8Array {
    if (a.redelivered) this.stat.redelivered++;
    return this.#route.envelope ? envelope(a) : a.payload;
  }

  /** Ack: a local ack send; the reply carries its outcome. */
  async #answer(m: Msg): Promise<void> {
    this.stat.inFlight++;
    try {
      const a = arrival(m.data, m.headers, m.subject, 1);
      const asked = Number(m.headers?.get(HEADER.timeout));
      const timeout = asked > 0
        ? Math.max(1, Math.min(this.#route.timeout, asked - REPLY_MARGIN_MS))
        : this.#route.timeout;
      try {
        await this.#channel.send(this.#payload(a), { mode: "ack", timeout, redelivered: a.redelivered });
      } catch (e) {
        this.stat.failed++;
        this.stat.lastError = text(e);
        m.respond(EMPTY, { headers: replyHeaders(e instanceof FerryError ? e.code : "Internal", text(e)) });
        return;
      }
      this.stat.forwarded++;
      // Success is a reply with no headers (the origin reads a missing status as "ok"): nothing to
      // encode here or parse there on the common path.
      m.respond(EMPTY);
    } finally {
      this.stat.inFlight--;
    }
  }

  /** Async: a durable pull consumer, its messages taken in order, a window's worth at a time. */
  async #consume(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        const consumer = await this.#js!.consumers.get(this.#stream!, this.#route.durable);
        // What was delivered before this consume started, by any process: the recorded bound
        // (see highwater.ts), and the server's delivered cursor (for a consumer older than the
        // bound's key).
        const recorded = await this.#highWater!.read();
        const info = await consumer.info(true);
        this.#deliveredBefore = Math.max(this.#deliveredBefore, recorded, info.delivered.stream_seq);
        this.#messages = await consumer.consume({ max_messages: this.#route.window });
        if (signal.aborted) this.#messages.stop();
        for await (const m of this.#messages) {
          await this.#deliver(m);
          if (signal.aborted) break;
        }
      } catch (e) {
        this.stat.lastError = `consuming '${this.#route.durable}' of stream '${this.#stream}': ${text(e)}`;
      }
      await pause(CONSUMER_RETRY_MS, signal);
    }
  }

  async #deliver(m: JsMsg): Promise<void> {
    this.stat.inFlight++;
    try {
      const a = arrival(m.data, m.headers, m.subject, m.info.deliveryCount);
      // JetStream can deliver a message again as a first delivery (deliveryCount 1): a server
      // that crashed can lose the acknowledgements it had not written yet, and nats-server before
      // 2.10.14 rewinds a pull consumer's cursor when a killed bridge left pull requests behind
      // (highwater.ts). First deliveries come in stream order, so one at or below the highest
      // stream sequence this process took, or at or below the bound that earlier processes
      // recorded, may be a repeat: marked, although JetStream does not say so.
      if (m.seq <= this.#highestSeq || m.seq <= this.#deliveredBefore) a.redelivered = true;
      this.#highestSeq = Math.max(this.#highestSeq, m.seq);
      try {
        // Recorded before the send: once the message is in the channel, a process that replaces
        // this one must find a bound that covers it.
        // Covered mostly: the bound is raised a step ahead, one KV write per step.
        if (!this.#highWater!.covers(m.seq)) await this.#highWater!.cover(m.seq);
        await this.#channel.send(this.#payload(a), { mode: "async", redelivered: a.redelivered });
      } catch (e) {
        // Not in the channel (full for the whole timeout, closed, or its bound not recorded):
        // JetStream offers it again later, and that copy counts as redelivered.
        this.stat.failed++;
        this.stat.retries++;
        this.stat.lastError = `sending into '${this.#route.channel}': ${text(e)}`;
        m.nak(NAK_DELAY_MS);
        return;
      }
      // In shared memory now: it outlives this process. If this ack is lost (a crash right here,
      // a dropped connection), JetStream delivers it again after ackWait, marked as a redelivery.
      this.#ackSoon(m);
      this.stat.forwarded++;
    } finally {
      this.stat.inFlight--;
    }
  }

  /**
   * Acknowledges `m` at the end of this event-loop turn, with every other message delivered in it:
   * the NATS client writes what one turn issued as one socket write, where an ack per message cost
   * a write each. The messages are in shared memory already; a crash before the write only makes
   * JetStream deliver them again, marked.
   */
  #ackSoon(m: JsMsg): void {
    if (this.#acks.push(m) === 1) setTimeout(() => this.#ackNow(), 0);
  }

  #ackNow(): void {
    for (const m of this.#acks.splice(0)) m.ack();
  }

  /** Stops taking messages, lets those in flight finish for up to `ms`, then closes the channel. */
  async close(ms: number): Promise<void> {
    this.#stop.abort();
    this.#messages?.stop();
    const started = performance.now();
    // Drain: no new requests; those received are answered before it completes.
    if (this.#subscription !== undefined) await drainWithin(this.#subscription, ms);
    await atMost(
      Promise.all([this.#loop, ...this.#pending]),
      Math.max(0, ms - (performance.now() - started)),
    );
    this.#ackNow();
    this.#channel.close();
  }
}
