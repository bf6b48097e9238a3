// Streamed calls (`client.stream()`) across a service route. The callers' side (A) runs each one
// as a local server runs a generator (StreamSender), with a RelayedStream as the generator: so the
// caller's own credits, cancel and end frames are the local ones. The servers' side (B) runs it as
// a local client (StreamPublisher) and publishes its items. Per call, on NATS:
//   A -> the route's subject: the call (Ferry-Method, Ferry-Timeout, Ferry-Window W, the args as
//        msgpack), its reply subject an inbox of A's for this call.
//   B -> that inbox: Ferry-Status "Start"; each item (Ferry-Seq n from 1, the item as msgpack); then
//        Ferry-Status "End" (Ferry-Seq: the item count) or a failure, as a unary reply carries it;
//        "Beat" when it sent nothing for BEAT_MS. Each with B's control inbox as its reply subject.
//   A -> B's control inbox: Ferry-Credit k once its caller took k items (k 0: a heartbeat), or
//        Ferry-Status "Cancel"; its reply subject A's inbox.
// B takes an item from its local stream only when it may send it (W credits, then those granted),
// and its local stream holds its server back by the stream's own window; A grants credits only as
// its local stream takes items, which it does within its caller's credits. So between the handler
// on B and the caller on A there are at most three windows of items, whatever either side's pace.
// Each side ends the call when the other is silent for the route's timeout (at least 3 beats), or
// at once when NATS answers what it sent with "no responders" (the other's inbox is gone).

import type { Msg, MsgHdrs, NatsConnection, Subscription } from "npm:nats@2.29.3";
import { FerryError } from "../errors.ts";
import type { Client } from "../patterns/rpc/client.ts";
import { checkCount, MAX_WINDOW } from "../patterns/rpc/options.ts";
import { StreamUnanswered } from "../patterns/rpc/streams.ts";
import type { ErrorPayload } from "../patterns/rpc/wire.ts";
import { natsModule } from "./nats.ts";
import { text, tooLarge } from "./outbound.ts";
import { Backoff } from "./window.ts";
import { newInbox } from "./requests.ts";
import {
  callHeaders,
  failureReply,
  ownHeaders,
  packer,
  relayedFailure,
  REMOTE,
  tooLargePayload,
} from "./service_wire.ts";
import type { RouteStat } from "./stat.ts";
import { HEADER, replyHeaders } from "./wire.ts";

/** Each side sends the other something at least this often (an item, a credit, or a beat). */
export const BEAT_MS = 1000;
/** Statuses of a streamed call's messages, beside a unary reply's (wire.ts, service_wire.ts). */
const START = "Start", BEAT = "Beat", END = "End", CANCEL = "Cancel";
const EMPTY = new Uint8Array(0);

/** @internal What a call's caller gets when the servers' side bridge closes under it (or before it starts). */
export function closed(): FerryError {
  return new FerryError("ServerClosed", "the bridge on the servers' side is closing");
}

/** How long the far side may be silent before the call is given up: the route's timeout, at least 3 beats. */
export function silenceLimit(routeTimeout: number): number {
  return Math.max(routeTimeout, 3 * BEAT_MS);
}

// ====================================================================== callers' side

/** A failure the far side answered (or A found in what it sent), as its caller's RemoteError will read. */
class FarError extends Error {
  readonly code: string;
  constructor(payload: ErrorPayload) {
    super(payload.message);
    this.name = payload.name;
    this.code = payload.code;
  }
}

/** How a relayed stream ended, once it has. */
type Ending =
  | { kind: "end" }
  /** Thrown into the local stream: an error frame for the caller (FarError), or the abort reason. */
  | { kind: "error"; error: unknown }
  | { kind: "unanswered"; error: StreamUnanswered };

/** What a RelayedStream sends. */
export interface RelayedCall {
  subject: string;
  method: string;
  /** The arguments as msgpack. */
  args: Uint8Array;
  /** The caller's own headers. */
  headers: Record<string, string>;
  /** The caller's window: the far side's credits before the first grant. */
  window: number;
  /** The route's timeout: for the far side to start, and the longest silence after. */
  timeout: number;
}

/**
 * @internal The callers' side of one streamed call: the source of items of a local stream
 * (StreamSender pulls from it within its caller's credits), fed by the far side's messages.
 */
export class RelayedStream implements AsyncIterableIterator<unknown> {
  readonly #nc: NatsConnection;
  readonly #call: RelayedCall;
  readonly #stat: RouteStat;
  readonly #inbox: string;
  /** Called once the relay let go of everything (its subscription and timer). */
  readonly #gone: () => void;
  /** Items taken between two credits: half the window, as a local client grants. */
  readonly #step: number;
  readonly #startBy: number;
  #sub: Subscription | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #items: unknown[] = [];
  #head = 0;
  /** Items received, and the most the far side may have sent by now (its window and the grants). */
  #received = 0;
  #allowed: number;
  #taken = 0;
  /** B's control inbox, from its first message. */
  #control: string | undefined;
  #started = false;
  #heard = performance.now();
  #told = performance.now();
  readonly #backoff = new Backoff();
  #retry: ReturnType<typeof setTimeout> | undefined;
  #ending: Ending | undefined;
  #wake: (() => void) | null = null;
  #closed = false;

  constructor(nc: NatsConnection, call: RelayedCall, stat: RouteStat, gone: () => void) {
    this.#nc = nc;
    this.#call = call;
    this.#stat = stat;
    this.#gone = gone;
    this.#inbox = newInbox(nc);
    this.#step = Math.max(1, call.window >> 1);
    this.#allowed = call.window;
    this.#startBy = performance.now() + call.timeout;
  }

  /** How the stream failed, for the route's stat; undefined while it runs, or if it ended or was cancelled. */
  get failure(): string | undefined {
    const e = this.#ending;
    if (e === undefined || e.kind === "end") return undefined;
    return e.error instanceof FarError || e.kind === "unanswered" ? text(e.error) : undefined;
  }

  /** Sends the call; `signal` (the local stream's) aborts when the caller cancels or the bridge closes. */
  start(signal: AbortSignal): this {
    if (signal.aborted) {
      this.#abort(signal.reason);
      return this;
    }
    signal.addEventListener("abort", () => this.#abort(signal.reason), { once: true });
    this.#sub = this.#nc.subscribe(this.#inbox, { callback: (err, m) => err || this.#receive(m) });
    this.#timer = setInterval(() => this.#tick(), BEAT_MS);
    this.#send();
    return this;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next item; the stream's end; or its failure, after every item that came before it. */
  async next(): Promise<IteratorResult<unknown>> {
    for (;;) {
      if (this.#head < this.#items.length) {
        const value = this.#items[this.#head++];
        if (this.#head === this.#items.length) {
          this.#items.length = 0;
          this.#head = 0;
        }
        if (++this.#taken >= this.#step) {
          this.#tell(HEADER.credit, String(this.#taken));
          this.#allowed += this.#taken;
          this.#taken = 0;
        }
        return { value, done: false };
      }
      const ending = this.#ending;
      if (ending !== undefined) {
        if (ending.kind === "end") return { value: undefined, done: true };
        throw ending.error;
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** The local stream let go (cancelled, or done): the far side stops too. */
  return(): Promise<IteratorResult<unknown>> {
    this.#abort(new FerryError("Cancelled", "the caller cancelled the stream"));
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Publishes the call; asked again while nobody subscribes to the subject, until the timeout. */
  #send(): void {
    this.#retry = undefined;
    if (this.#ending !== undefined) return;
    const left = Math.floor(this.#startBy - performance.now());
    if (left <= 0) {
      return this.#unanswered(
        `no server answered on '${this.#call.subject}' within ${this.#call.timeout} ms`,
      );
    }
    const h = callHeaders(this.#call.headers, this.#call.method, left);
    h.set(HEADER.window, String(this.#call.window));
    try {
      this.#nc.publish(this.#call.subject, this.#call.args, { reply: this.#inbox, headers: h });
    } catch (e) {
      if (tooLarge(e)) {
        return this.#fail(
          "MessageTooLarge",
          tooLargePayload(`the arguments of ${this.#call.method}`).message,
        );
      }
      this.#unanswered(`the call could not be sent on '${this.#call.subject}': ${text(e)}`);
    }
  }

  #receive(m: Msg): void {
    if (this.#closed) return;
    this.#heard = performance.now();
    if (m.reply) this.#control ??= m.reply;
    if (this.#ending !== undefined) {
      // Cancelled before the far side said where its control inbox is: now it has.
      this.#tell(HEADER.status, CANCEL);
      return this.#close();
    }
    const status = m.headers?.get(HEADER.status) ?? "";
    if (this.#started && m.data.length === 0 && m.headers?.code === 503) {
      // NATS's "no responders" for a credit or a beat: nobody subscribes to the far side's control
      // inbox any more, so its bridge died (it would have sent an end first otherwise).
      return this.#end({
        kind: "unanswered",
        error: new StreamUnanswered(
          "PeerDied",
          `the bridge serving '${this.#call.subject}' is gone mid-stream`,
        ),
      });
    }
    if (m.data.length === 0 && m.headers?.code === 503) {
      // No bridge subscribes (yet): nothing ran, so asking again cannot run it twice.
      this.#stat.retries++;
      this.#stat.lastError = `no bridge answers '${this.#call.subject}' (retrying until the timeout)`;
      const wait = this.#backoff.next(this.#startBy - performance.now());
      this.#retry = setTimeout(() => this.#send(), wait);
      return;
    }
    this.#started = true;
    if (status === "") return this.#item(m);
    if (status === START || status === BEAT) return;
    if (status === END) {
      const count = Number(m.headers?.get(HEADER.seq));
      if (count !== this.#received) return this.#lost(count);
      return this.#end({ kind: "end" });
    }
    const why = `${this.#call.subject}: the far side answered ${status}: ${m.headers?.get(HEADER.error)}`;
    if (status === REMOTE) {
      let payload: ErrorPayload;
      try {
        payload = packer.decode(m.data, 0, m.data.length) as ErrorPayload;
      } catch (e) {
        return this.#fail("Decode", `the far side's error is not msgpack: ${text(e)}`);
      }
      return this.#end({ kind: "error", error: new FarError(payload) });
    }
    const failure = relayedFailure(status, why);
    if ("outcome" in failure) {
      return this.#end({ kind: "unanswered", error: new StreamUnanswered(failure.outcome, failure.why) });
    }
    this.#end({ kind: "error", error: new FarError(failure.error) });
  }

  #item(m: Msg): void {
    const seq = Number(m.headers?.get(HEADER.seq));
    if (seq !== this.#received + 1) return this.#lost(seq);
    // Never more than the credits: a far side that ignores them is not buffered for.
    if (seq > this.#allowed) {
      return this.#fail(
        "CreditExceeded",
        `the far side sent item ${seq} with ${this.#allowed} granted; it ignores the stream's credits`,
      );
    }
    let value: unknown;
    try {
      value = packer.decode(m.data, 0, m.data.length);
    } catch (e) {
      return this.#fail("Decode", `item ${seq} from the far side is not msgpack: ${text(e)}`);
    }
    this.#received = seq;
    this.#items.push(value);
    this.#wakeUp();
  }

  /** Items missing: NATS dropped some (a reconnect, a slow consumer); the caller must not miss them silently. */
  #lost(seq: number): void {
    this.#fail(
      "ItemsLost",
      `items of the stream were lost between the bridges (after item ${this.#received}, ${
        Number.isNaN(seq) ? "a message without a number" : `item ${seq}`
      } came)`,
    );
  }

  /** Ends the call on this side's account: the far side is cancelled, the caller gets RemoteError `code`. */
  #fail(code: string, message: string): void {
    this.#tell(HEADER.status, CANCEL);
    this.#end({ kind: "error", error: new FarError({ code, name: "RemoteError", message }) });
  }

  #unanswered(why: string): void {
    this.#tell(HEADER.status, CANCEL);
    this.#end({ kind: "unanswered", error: new StreamUnanswered("Expired", why) });
  }

  #end(ending: Ending): void {
    if (this.#ending !== undefined) return;
    this.#ending = ending;
    this.#close();
    this.#wakeUp();
  }

  /** The local stream stopped (its caller cancelled, the bridge closes, or it ended). */
  #abort(reason: unknown): void {
    if (this.#ending !== undefined) return;
    this.#ending = { kind: "error", error: reason };
    this.#items.length = 0;
    this.#head = 0;
    this.#wakeUp();
    if (this.#control === undefined && this.#sub !== undefined) {
      // The far side may have the call without having said so yet: stay to cancel it when it does,
      // until it would have had to answer.
      return;
    }
    this.#tell(HEADER.status, CANCEL);
    this.#close();
  }

  #tick(): void {
    const now = performance.now();
    if (this.#ending !== undefined) {
      // Waiting to cancel a call the far side never started: past its start, nothing will come.
      if (now >= this.#startBy) this.#close();
      return;
    }
    if (!this.#started) {
      if (now >= this.#startBy && this.#retry === undefined) {
        this.#unanswered(`no answer on '${this.#call.subject}' within ${this.#call.timeout} ms`);
      }
      return;
    }
    const silence = silenceLimit(this.#call.timeout);
    if (now - this.#heard > silence) {
      return this.#unanswered(`nothing came from the far side on '${this.#call.subject}' for ${silence} ms`);
    }
    if (now - this.#told >= BEAT_MS) this.#tell(HEADER.credit, "0");
  }

  /** One control message to the far side; nothing when it has not said where, or NATS is gone. */
  #tell(name: string, value: string): void {
    if (this.#control === undefined || this.#closed) return;
    const h = natsModule().headers();
    h.set(name, value);
    try {
      // With this side's inbox to reply to, so that NATS says so there when nobody is left to hear it.
      this.#nc.publish(this.#control, EMPTY, { headers: h, reply: this.#inbox });
      this.#told = performance.now();
    } catch {
      // The connection is closing: the far side notices the silence.
    }
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Lets go of the subscription and the timer (the bridge closing, or the stream over). */
  close(): void {
    this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retry);
    this.#sub?.unsubscribe();
    this.#gone();
  }
}

// ====================================================================== servers' side

/**
 * @internal The servers' side of one streamed call: runs it as a client of the local service and
 * publishes its items to the caller's side within the credits that side grants.
 */
export class StreamPublisher {
  readonly #nc: NatsConnection;
  readonly #client: Client;
  readonly #call: Msg;
  readonly #routeTimeout: number;
  readonly #stat: RouteStat;
  readonly #local = new AbortController();
  #credits = 0;
  #heard = performance.now();
  #told = performance.now();
  #wake: (() => void) | null = null;
  /** Why the caller's side needs no answer: it cancelled, or it went silent. */
  #gone: string | undefined;

  constructor(nc: NatsConnection, client: Client, call: Msg, routeTimeout: number, stat: RouteStat) {
    this.#nc = nc;
    this.#client = client;
    this.#call = call;
    this.#routeTimeout = routeTimeout;
    this.#stat = stat;
  }

  /** Whether a call that came in is a streamed one. */
  static isStream(m: Msg): boolean {
    return m.headers?.has(HEADER.window) ?? false;
  }

  /**
   * Runs the call to its end, its local stream given `timeout` ms to start (the time the caller's
   * side still waits); `stop` aborts when the bridge closes (the caller gets "ServerClosed").
   */
  async run(stop: AbortSignal, timeout: number): Promise<void> {
    const to = this.#call.reply;
    if (!to) return; // nobody to send to
    const method = this.#call.headers?.get(HEADER.method) ?? "";
    let args: unknown, window: number;
    try {
      window = checkCount(
        "the call's Ferry-Window",
        Number(this.#call.headers?.get(HEADER.window)),
        0,
        1,
        MAX_WINDOW,
      );
      args = this.#call.data.length === 0
        ? undefined
        : packer.decode(this.#call.data, 0, this.#call.data.length);
    } catch (e) {
      return this.#failed(to, method, e, undefined);
    }
    if (stop.aborted) return this.#failed(to, method, closed(), undefined);
    this.#credits = window;
    const control = newInbox(this.#nc);
    const sub = this.#nc.subscribe(control, { callback: (err, m) => err || this.#control(m) });
    // Closing wakes a stream waiting for credits too, so that it ends (ServerClosed) now, within
    // the bridge's closeTimeout, not at the caller's next message.
    const onStop = () => {
      this.#local.abort(closed());
      this.#wakeUp();
    };
    stop.addEventListener("abort", onStop, { once: true });
    const timer = setInterval(() => this.#tick(to, control), BEAT_MS);
    let items: AsyncGenerator<unknown, void, undefined> | undefined;
    let seq = 0;
    try {
      this.#publish(to, control, START);
      items = this.#client.stream(method, args, {
        window,
        timeout,
        headers: ownHeaders(this.#call.headers),
        signal: this.#local.signal,
      });
      for (;;) {
        // The next item is taken from the local stream only once it may go: until then the local
        // stream's window holds its server back.
        while (this.#credits === 0 && !this.#local.signal.aborted) {
          await new Promise<void>((resolve) => this.#wake = resolve);
        }
        this.#local.signal.throwIfAborted();
        const next = await items.next();
        if (next.done) {
          this.#publish(to, control, END, String(seq));
          this.#stat.forwarded++;
          return;
        }
        this.#credits--;
        this.#publish(to, control, "", String(++seq), packer.encode(next.value));
      }
    } catch (e) {
      if (this.#gone !== undefined) {
        // Cancelled by the caller's side: carried as far as it wanted. Gone silent: nobody to tell.
        if (this.#gone === CANCEL) this.#stat.forwarded++;
        else this.#fail(method, this.#gone);
        return;
      }
      this.#failed(to, method, e, control);
    } finally {
      clearInterval(timer);
      stop.removeEventListener("abort", onStop);
      sub.unsubscribe();
      this.#local.abort(); // a local stream still pending stops (its server is cancelled)
      await items?.return();
    }
  }

  /** Tells the caller's side how the call failed (as a unary reply would), and counts it. */
  #failed(to: string, method: string, e: unknown, control: string | undefined): void {
    this.#fail(method, text(e));
    const [payload, h] = tooLarge(e)
      ? [packer.encode(tooLargePayload(`an item of ${method}`)), replyHeaders(REMOTE)]
      : failureReply(e);
    try {
      this.#nc.publish(to, payload ?? EMPTY, { headers: h, reply: control });
    } catch {
      // The connection is closing: the caller's side notices the silence.
    }
  }

  #fail(method: string, why: string): void {
    this.#stat.failed++;
    this.#stat.lastError = `${method}: ${why}`;
  }

  /** One message of the stream: a status (or "" for an item), with the item's number or the count. */
  #publish(to: string, control: string, status: string, seq?: string, data: Uint8Array = EMPTY): void {
    const h: MsgHdrs = natsModule().headers();
    if (status !== "") h.set(HEADER.status, status);
    if (seq !== undefined) h.set(HEADER.seq, seq);
    this.#nc.publish(to, data, { headers: h, reply: control });
    this.#told = performance.now();
  }

  /** A credit, a heartbeat or a cancel from the caller's side. */
  #control(m: Msg): void {
    if (m.data.length === 0 && m.headers?.code === 503) {
      // NATS's "no responders" for something this side sent: nobody subscribes to the caller's
      // side's inbox any more, so that side let go of the call (its bridge died, or it ended it).
      this.#gone ??= "the caller's side is gone: stream cancelled";
      this.#local.abort(new FerryError("PeerDied", this.#gone));
    } else if (m.headers?.get(HEADER.status) === CANCEL) {
      this.#heard = performance.now();
      this.#gone ??= CANCEL;
      this.#local.abort(new FerryError("Cancelled", "the caller cancelled the stream"));
    } else {
      this.#heard = performance.now();
      const credit = Number(m.headers?.get(HEADER.credit));
      // A count that is not one is ignored: it can only hold the stream back, never overrun it.
      if (Number.isSafeInteger(credit) && credit > 0) this.#credits += credit;
    }
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #tick(to: string, control: string): void {
    const now = performance.now();
    const silence = silenceLimit(this.#routeTimeout);
    if (now - this.#heard > silence) {
      this.#gone ??= `nothing came from the caller's side for ${silence} ms: stream cancelled`;
      this.#local.abort(new FerryError("Timeout", this.#gone));
      return this.#wakeUp();
    }
    if (now - this.#told >= BEAT_MS) {
      try {
        this.#publish(to, control, BEAT);
      } catch {
        // The connection is closing: nothing more to send.
      }
    }
  }
}
