// An out route: the bridge is one more receiver of a local channel. It takes messages without
// releasing them (autoRelease: false), forwards each, and releases it only once NATS confirmed it,
// so a producer's slot (and, in ack mode, its `send`) waits for the far side. A bridge that dies
// holding messages hands them back through ferry's own recovery: they are delivered again, marked
// `redelivered`, to the next bridge on the channel.

import type { Msg, NatsConnection } from "npm:nats@2.29.3";
import { Channel, type Message, type RejectOutcome } from "../../mod.ts";
import type { CheckedOut } from "./options.ts";
import { newRouteStat, type RouteStat } from "./stat.ts";
import { atMost, Backoff, pause, RECV_SLICE_MS, takeInWindow, Window } from "./window.ts";
import { BUSY, HEADER, metaHeaders } from "./wire.ts";
import { Requests } from "./requests.ts";
import { trustOf } from "../open.ts";
import { type SharedMsgpack, sharedMsgpack } from "../structures.ts";

/**
 * An ack route holds a failed message this long past its deadline before releasing it, so that its
 * producer's own ack wait (at most the route's timeout, and started earlier) has certainly given up:
 * a release before that would resolve the producer's `send` as if the message had been processed.
 */
export const HOLD_GRACE_MS = 1000;

/** @internal */
export class OutboundRoute {
  readonly stat: RouteStat;
  readonly #route: CheckedOut;
  readonly #origin: string;
  /** Ack routes' NATS requests and async routes' JetStream publishes, on one reply subscription. */
  readonly #requests: Requests;
  readonly #stream: string | undefined;
  readonly #channel: Channel<Uint8Array>;
  /** The origin namespace's msgpack: its shape ids mean nothing on the far side (see #payload). */
  readonly #msgpack: SharedMsgpack;
  readonly #window: Window;
  readonly #stop = new AbortController();
  /** Failed ack messages held until their producer's wait is over, with the timer that releases each. */
  readonly #held = new Map<ReturnType<typeof setTimeout>, Message<Uint8Array>>();
  #pump: Promise<void> | undefined;

  constructor(
    route: CheckedOut,
    prefix: string,
    nc: NatsConnection,
    stream: string | undefined,
  ) {
    this.#route = route;
    this.#origin = `${prefix}/${route.channel}`;
    this.#requests = new Requests(nc);
    this.#stream = stream;
    this.stat = newRouteStat("out", route);
    this.#window = new Window(route.window);
    this.#msgpack = sharedMsgpack(prefix, trustOf(route.open ?? {}));
    // Raw: the bridge moves the producer's encoded bytes, decoding only those that name shapes of
    // this namespace's structure store (#payload).
    this.#channel = Channel.open<Uint8Array>(route.channel, {
      ...route.open,
      prefix,
      codec: "raw",
      autoRelease: false,
      timeout: RECV_SLICE_MS,
    });
  }

  /**
   * What travels: the producer's bytes, except that a msgpack message naming shapes of this
   * namespace's structure store is re-encoded standalone, since the far side has another store.
   */
  #payload(msg: Message<Uint8Array>): Uint8Array {
    try {
      return this.#msgpack.standalone(msg.bytes);
    } catch {
      return msg.bytes; // not decodable here either: forwarded as it came, as any other bytes
    }
  }

  start(): void {
    this.#pump = this.#run();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    for (;;) {
      const msg = await takeInWindow(this.#window, this.#channel, signal, (e) => {
        this.stat.lastError = `receiving from '${this.#route.channel}': ${text(e)}`;
      });
      if (msg === undefined) break;
      this.#forward(msg);
      // Whatever else is queued now goes out in this same turn: the NATS client writes everything
      // issued in one turn as one socket write, where a receive per turn cost a write each.
      while (!signal.aborted && this.#window.tryAcquire()) {
        let next: Message<Uint8Array> | undefined;
        try {
          next = this.#channel.tryRecv();
        } catch {
          next = undefined; // the next recv above reports it
        }
        if (next === undefined) {
          this.#window.release();
          break;
        }
        this.#forward(next);
      }
    }
  }

  /** Starts forwarding a message that holds a place in the window; the place is freed when it ends. */
  #forward(msg: Message<Uint8Array>): void {
    this.stat.inFlight++;
    if (msg.redelivered) this.stat.redelivered++;
    const forward = this.#route.mode === "ack" ? this.#request(msg) : this.#publish(msg);
    forward
      .catch((e) => this.stat.lastError = text(e))
      .finally(() => {
        this.stat.inFlight--;
        this.#window.release();
      });
  }

  /** Async: JetStream stores it, then it is released. Retried until stored or the route closes. */
  async #publish(msg: Message<Uint8Array>): Promise<void> {
    const signal = this.#stop.signal;
    let resent = false;
    const backoff = new Backoff();
    for (;;) {
      try {
        // What js.publish does, on the route's one reply subscription (see requests.ts).
        const headers = metaHeaders(msg, this.#origin, resent);
        headers.set(EXPECTED_STREAM, this.#stream!);
        pubAck(
          await this.#requests.request(this.#route.subject, this.#payload(msg), this.#route.timeout, headers),
        );
        release(msg);
        this.stat.forwarded++;
        return;
      } catch (e) {
        if (tooLarge(e)) return this.#refuse(msg, e);
        this.stat.retries++;
        this.stat.lastError = `publishing to '${this.#route.subject}': ${text(e)}`;
        // Left held: close() hands it back to the channel, and the next bridge forwards it again.
        if (signal.aborted) return;
        // A publish that timed out or was cut by a disconnect may have been stored with its PubAck
        // lost: the next copy says it may be a duplicate. "No responders" means JetStream never
        // saw it.
        if (!resent && !noResponders(e)) {
          resent = true;
          this.stat.redelivered++;
        }
        await pause(backoff.next(), signal);
      }
    }
  }

  /** Ack: a NATS request; the remote bridge replies once its local receiver released the message. */
  async #request(msg: Message<Uint8Array>): Promise<void> {
    const signal = this.#stop.signal;
    const deadline = performance.now() + this.#route.timeout;
    const backoff = new Backoff();
    for (;;) {
      const left = Math.floor(deadline - performance.now());
      if (left <= 0) {
        return this.#hold(
          msg,
          deadline,
          `no bridge answered on '${this.#route.subject}' within ${this.#route.timeout} ms`,
        );
      }
      const headers = metaHeaders(msg, this.#origin, false);
      headers.set(HEADER.timeout, String(left));
      let reply;
      try {
        reply = await this.#requests.request(this.#route.subject, this.#payload(msg), left, headers);
      } catch (e) {
        if (signal.aborted) return;
        if (tooLarge(e)) return this.#refuse(msg, e);
        if (noResponders(e)) {
          // Nobody subscribes yet (the remote bridge is starting, or gone): nothing was delivered,
          // so asking again cannot duplicate it.
          this.stat.retries++;
          this.stat.lastError =
            `no bridge subscribes to '${this.#route.subject}' (retrying until the timeout)`;
          await pause(backoff.next(left), signal);
          continue;
        }
        return this.#hold(
          msg,
          deadline,
          `no reply on '${this.#route.subject}' within ${left} ms: ${text(e)}`,
        );
      }
      // A reply without ferry's status header comes from a plain NATS responder: it answered, so
      // it is done with the message.
      const status = reply.headers?.get(HEADER.status) || "ok";
      if (status === BUSY) {
        // The far bridge holds its window already and took nothing: asking again cannot duplicate.
        this.stat.retries++;
        this.stat.lastError = `the bridge on '${this.#route.subject}' is busy (retrying until the timeout)`;
        await pause(backoff.next(left), signal);
        continue;
      }
      if (status === "ok") {
        release(msg);
        this.stat.forwarded++;
        return;
      }
      const why = `the remote side answered ${status}: ${reply.headers?.get(HEADER.error)}`;
      // A remote timeout is the producer's own: its wait ends the same way, a moment later.
      if (status === "Timeout") return this.#hold(msg, deadline, why);
      this.stat.failed++;
      this.stat.lastError = why;
      reject(msg, relayed(status));
      return;
    }
  }

  /**
   * A message larger than the NATS server takes (its `max_payload`, 1 MB by default) or than its
   * stream does (`max_msg_size`): no attempt can ever carry it, so it is rejected at once. An ack
   * producer's send ends in RejectedError; an async message, whose send has returned already, is
   * dropped, counted in `failed` with the reason in `lastError` (waiting for it would hold the
   * producer's slot and the route's place for ever).
   */
  #refuse(msg: Message<Uint8Array>, e: unknown): void {
    this.stat.failed++;
    this.stat.lastError =
      `a message of ${msg.bytes.length} bytes on '${this.#route.channel}' is larger than the ` +
      `NATS server or its stream takes (max_payload with the headers, max_msg_size): not forwarded (${
        text(e)
      })`;
    reject(msg, "Rejected");
  }

  /**
   * A message whose outcome is unknown (no reply) or a timeout. Releasing it now would resolve its
   * producer's `send` as a success, and rejecting it would say more than the bridge knows; so it is
   * held until the producer's own ack wait has run out (TimeoutError there), then released to free
   * its slot.
   */
  #hold(msg: Message<Uint8Array>, deadline: number, why: string): void {
    this.stat.failed++;
    this.stat.held++;
    this.stat.lastError = why;
    const timer = setTimeout(() => {
      this.#held.delete(timer);
      this.stat.held--;
      release(msg);
    }, Math.max(0, deadline + HOLD_GRACE_MS - performance.now()));
    this.#held.set(timer, msg);
  }

  /**
   * Stops taking messages, lets those in flight finish for up to `ms`, then closes the channel:
   * what it still holds (unconfirmed, or held after a failure) goes back to the queue, marked
   * `redelivered`, for the next bridge.
   */
  async close(ms: number): Promise<void> {
    this.#stop.abort();
    this.#window.wakeAll();
    await this.#pump;
    await atMost(this.#window.idle(), ms);
    for (const t of this.#held.keys()) clearTimeout(t);
    this.stat.held = 0;
    this.#held.clear();
    this.#requests.close();
    this.#channel.close();
  }
}

/** @internal Releases a held message; one whose channel was closed went back to the queue already. */
export function release(msg: Message<Uint8Array>): void {
  try {
    msg.release();
  } catch {
    // The channel was closed meanwhile: the message went back to the queue instead.
  }
}

/** @internal Rejects a held message (see release). */
export function reject(msg: Message<Uint8Array>, outcome: RejectOutcome): void {
  try {
    msg.reject(outcome);
  } catch {
    // As in release: closed meanwhile, so it went back to the queue.
  }
}

/**
 * What the producer's send rejects with for a remote failure: the remote receiver's death or the
 * message's expiry as they were, anything else that kept it from the remote channel (full, closed,
 * too large there, a remote receiver's reject) as RejectedError.
 */
function relayed(status: string): RejectOutcome {
  return status === "PeerDied" || status === "Expired" ? status : "Rejected";
}

/** The header by which JetStream stores a message only in the stream it names. */
const EXPECTED_STREAM = "Nats-Expected-Stream";

/** JetStream's API error for a message over the stream's max_msg_size. */
const EXCEEDS_MAX_MSG_SIZE = 10054;

/** Checks JetStream's answer to a publish: a PubAck naming the stream, or an error thrown. */
function pubAck(reply: Msg): void {
  let ack: { stream?: string; error?: { code?: number; err_code?: number; description?: string } };
  try {
    ack = reply.json();
  } catch {
    throw new Error("JetStream's answer to a publish is not JSON");
  }
  if (ack.error !== undefined) {
    const why = `JetStream refused the message: ${ack.error.description} (${ack.error.code})`;
    // Too large for the stream: as for the server's max_payload, no attempt can ever store it.
    if (ack.error.err_code === EXCEEDS_MAX_MSG_SIZE) {
      throw Object.assign(new Error(why), { code: PAYLOAD_TOO_LARGE });
    }
    throw new Error(why);
  }
  if (!ack.stream) throw new Error("JetStream's answer to a publish names no stream");
}

/** @internal */
export function text(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The NATS client's error code for a message larger than the server's max_payload. */
const PAYLOAD_TOO_LARGE = "MAX_PAYLOAD_EXCEEDED";

/**
 * @internal A message too large to ever cross: over the server's max_payload (the client refuses
 * it), or over a stream's max_msg_size (JetStream does).
 */
export function tooLarge(e: unknown): boolean {
  return (e as { code?: string })?.code === PAYLOAD_TOO_LARGE;
}

/** @internal The NATS client's "503": no subscriber for a request (or JetStream not there). */
export function noResponders(e: unknown): boolean {
  return (e as { code?: string })?.code === "503";
}
