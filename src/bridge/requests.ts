// NATS request/reply for the bridge's routes (ack and async channel routes, service routes), on one
// reply subscription per route. The client's own `request` costs 5-6 µs of CPU per call here
// (12-21 µs with its async stack traces): a timer, a deferred and a token per request. This one is
// a publish with a reply subject, a map entry, and one timer for the whole route: about a
// microsecond.
//
// A reply is matched by the token at the end of its subject. The server answers a request nobody
// subscribes to with an empty 503 status message on that subject ("no responders"); it rejects
// with code "503", as the client's own request does, so `noResponders` reads both alike.

import type { Msg, MsgHdrs, NatsConnection, Subscription } from "npm:nats@2.29.3";
import { natsModule } from "./nats.ts";

/** Why a request ended without a reply: `code` "503" (nobody subscribes) or "TIMEOUT". */
export class RequestFailed extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "RequestFailed";
    this.code = code;
  }
}

/**
 * @internal A new inbox subject of `nc`: under the prefix the connection was given (`inboxPrefix`,
 * for servers whose permissions allow replies only there), as the client's own request's would be.
 */
export function newInbox(nc: NatsConnection): string {
  const prefix = (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
  return natsModule().createInbox(prefix);
}

interface Pending {
  resolve: (m: Msg) => void;
  reject: (e: Error) => void;
  /** performance.now() ms at which it times out. */
  deadline: number;
}

/** @internal */
export class Requests {
  readonly #nc: NatsConnection;
  readonly #inbox: string;
  readonly #pending = new Map<number, Pending>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #sub: Subscription | undefined;
  #token = 0;
  #closed = false;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#inbox = `${newInbox(nc)}.`;
  }

  /** Publishes `data` to `subject` and resolves with the first reply, within `timeoutMs`. */
  request(subject: string, data: Uint8Array, timeoutMs: number, headers?: MsgHdrs): Promise<Msg> {
    if (this.#closed) return Promise.reject(new RequestFailed("CLOSED", "the bridge closed"));
    this.#sub ??= this.#nc.subscribe(`${this.#inbox}*`, {
      callback: (err, m) => err ? this.#lost(err) : this.#reply(m),
    });
    const token = ++this.#token;
    const { promise, resolve, reject } = Promise.withResolvers<Msg>();
    const deadline = performance.now() + timeoutMs;
    try {
      this.#nc.publish(subject, data, { reply: `${this.#inbox}${token}`, headers });
    } catch (e) {
      return Promise.reject(e);
    }
    this.#pending.set(token, { resolve, reject, deadline });
    if (deadline < this.#timerAt) this.#arm(deadline);
    return promise;
  }

  /**
   * The reply subscription failed (the server refused it: no permission on the inbox): what waits
   * fails with the server's reason, not a timeout, and the next request subscribes again.
   */
  #lost(err: Error): void {
    this.#sub = undefined;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  #reply(m: Msg): void {
    const token = Number(m.subject.slice(this.#inbox.length));
    const p = this.#pending.get(token);
    if (p === undefined) return; // timed out already, or a stray reply
    this.#pending.delete(token);
    if (m.data.length === 0 && m.headers?.code === 503) {
      p.reject(new RequestFailed("503", "no responders"));
    } else {
      p.resolve(m);
    }
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - performance.now()));
  }

  /**
   * Times out what is due, then arms the timer for the nearest deadline left. The map holds only
   * requests in flight (a route's window), so a pass over it is short; and the timer is re-armed
   * by a request only when its deadline is nearer than the armed one, which with a route's fixed
   * timeout is rare.
   */
  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [token, p] of this.#pending) {
      if (p.deadline <= now) {
        this.#pending.delete(token);
        p.reject(new RequestFailed("TIMEOUT", "no reply in time"));
      } else if (p.deadline < next) {
        next = p.deadline;
      }
    }
    if (next < Infinity) this.#arm(next);
  }

  /** Ends every request still waiting (the bridge is closing) and the reply subscription. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    for (const p of this.#pending.values()) p.reject(new RequestFailed("CLOSED", "the bridge closed"));
    this.#pending.clear();
    this.#sub?.unsubscribe();
    this.#sub = undefined;
  }
}
