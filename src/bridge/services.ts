// A service route: ferry's request/response (src/patterns/rpc) across NATS request/reply. Out (the
// callers' side): the bridge is one more server of the local service; it takes each call from the
// request channel, sends it as a NATS request, writes the answer into the caller's reply channel and
// only then releases the call, as a local server does. In (the servers' side): the bridge answers the
// subject's requests, in a queue group, as a client of the local service. A remote server's death
// and a timeout come back as the caller's own PeerDiedError and TimeoutError (the bridge rejects the
// held call so), a handler's error as the same RemoteError. Streamed calls take the same two places
// and run in service_streams.ts.

import type { Msg, MsgHdrs, NatsConnection, Subscription as NatsSubscription } from "npm:nats@2.29.3";
import type { Channel, Message } from "../../mod.ts";
import { type FerryError, TimeoutError } from "../errors.ts";
import { type Frame, FrameKind, readFrame } from "../patterns/headers.ts";
import { openShared } from "../patterns/private_channels.ts";
import { type Client, connect } from "../patterns/rpc/client.ts";
import { DEFAULT_WINDOW } from "../patterns/rpc/options.ts";
import { ReplySender } from "../patterns/rpc/replies.ts";
import { StreamSender, StreamUnanswered } from "../patterns/rpc/streams.ts";
import {
  errorPayload,
  REQUEST_CAPACITY,
  REQUEST_MAX_SIZE,
  requestChannelName,
  SWEEP_MS,
  sweepService,
} from "../patterns/rpc/wire.ts";
import { Requests } from "./requests.ts";
import type { CheckedService } from "./options.ts";
import { noResponders, reject, release, text, tooLarge } from "./outbound.ts";
import { closed, RelayedStream, StreamPublisher } from "./service_streams.ts";
import {
  callHeaders,
  failureReply,
  localTimeout,
  ownHeaders,
  packer,
  relayedFailure,
  REMOTE,
  TOO_LARGE,
  tooLargePayload,
} from "./service_wire.ts";
import { newRouteStat, type RouteStat } from "./stat.ts";
import { atMost, Backoff, drainWithin, pause, RECV_SLICE_MS, takeInWindow, Window } from "./window.ts";
import { HEADER, replyHeaders } from "./wire.ts";

/**
 * Most items of a relayed stream written in one frame to its caller: those that came from NATS
 * together (the local stream's `streamBatch`; a bridge that dies loses what it held either way).
 */
const RELAY_BATCH = 32;

/** @internal The callers' side: a server of the local service whose calls go out as NATS requests. */
export class ServiceCaller {
  readonly stat: RouteStat;
  readonly #route: CheckedService;
  readonly #prefix: string;
  /** The calls going out, as NATS requests on one reply subscription. */
  readonly #nats: Requests;
  readonly #window: Window;
  readonly #stop = new AbortController();
  #requests: Channel<Uint8Array> | undefined;
  #replies: ReplySender | undefined;
  /** Streamed calls, sent to their callers as a local server sends them. */
  #streams: StreamSender | undefined;
  /** Streamed calls relayed now, and calls cancelled before the far side said it took them. */
  readonly #relays = new Set<RelayedStream>();
  readonly #nc: NatsConnection;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #pump: Promise<void> | undefined;

  constructor(route: CheckedService, prefix: string, nc: NatsConnection) {
    this.#route = route;
    this.#prefix = prefix;
    this.#nats = new Requests(nc);
    this.#nc = nc;
    this.#window = new Window(route.window);
    this.stat = newRouteStat("out", { channel: route.service, subject: route.subject, mode: "service" });
    sweepService(prefix, route.service);
    // The request channel as a local server opens it: taken without release, released once answered.
    this.#requests = openShared<Uint8Array>(
      requestChannelName(route.service),
      { prefix, codec: "raw", autoRelease: false, timeout: RECV_SLICE_MS },
      { capacity: REQUEST_CAPACITY, maxMessageSize: REQUEST_MAX_SIZE },
    );
    this.#replies = new ReplySender(prefix, route.timeout);
    this.#streams = new StreamSender(route.service, prefix, this.#replies, RELAY_BATCH);
  }

  start(): void {
    this.#sweeper = setInterval(() => this.#replies?.sweep(), SWEEP_MS);
    this.#pump = this.#run();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    for (;;) {
      const msg = await takeInWindow(this.#window, this.#requests!, signal, (e) => {
        this.stat.lastError = `receiving calls of '${this.#route.service}': ${text(e)}`;
      });
      if (msg === undefined) break;
      this.stat.inFlight++;
      this.#call(msg)
        .catch((e) => this.#fail(e))
        .finally(() => {
          this.stat.inFlight--;
          this.#window.release();
        });
    }
  }

  async #call(msg: Message<Uint8Array>): Promise<void> {
    let frame: Frame;
    try {
      frame = readFrame(msg.bytes);
    } catch {
      return release(msg); // not a call: nothing to answer
    }
    if (frame.replyTo === undefined) return release(msg);
    if (frame.kind === FrameKind.StreamRequest) return await this.#stream(msg, frame);
    if (frame.kind !== FrameKind.Request) return release(msg);

    const signal = this.#stop.signal;
    const deadline = performance.now() + this.#route.timeout;
    let payload: Uint8Array;
    try {
      payload = packer.encode(frame.data);
    } catch (e) {
      // Arguments standard msgpack cannot carry (a bigint beyond 64 bits): the caller learns why at once.
      this.#fail(`${frame.subject}: ${text(e)}`);
      await this.#replies!.sendError(frame, errorPayload(e));
      return release(msg);
    }
    const backoff = new Backoff();
    for (;;) {
      const left = Math.floor(deadline - performance.now());
      if (left <= 0) {
        return this.#expire(
          msg,
          `no server answered on '${this.#route.subject}' within ${this.#route.timeout} ms`,
        );
      }
      let reply: Msg;
      try {
        reply = await this.#nats.request(
          this.#route.subject,
          payload,
          left,
          callHeaders(frame.headers, frame.subject ?? "", left),
        );
      } catch (e) {
        // Closing: left held, so closing the channel hands the call to the service's next server.
        if (signal.aborted) return;
        if (tooLarge(e)) {
          // No attempt can carry it: the caller learns why at once.
          this.#fail(`${frame.subject}: ${TOO_LARGE} (${payload.length} bytes)`);
          await this.#replies!.sendError(frame, tooLargePayload(`the arguments of ${frame.subject}`));
          return release(msg);
        }
        if (noResponders(e)) {
          // No bridge serves the subject (yet): nothing ran, so asking again cannot run it twice.
          this.stat.retries++;
          this.stat.lastError = `no bridge answers '${this.#route.subject}' (retrying until the timeout)`;
          await pause(backoff.next(left), signal);
          continue;
        }
        return this.#expire(msg, `no reply on '${this.#route.subject}' within ${left} ms: ${text(e)}`);
      }
      return await this.#answer(msg, frame, reply);
    }
  }

  /**
   * A streamed call: run as a local server runs a generator, with the far side's items as the
   * generator (service_streams.ts); held, as any call, until its end.
   */
  async #stream(msg: Message<Uint8Array>, frame: Frame): Promise<void> {
    let args: Uint8Array;
    try {
      args = packer.encode(frame.data);
    } catch (e) {
      // Arguments standard msgpack cannot carry: the caller's RemoteError, as a handler's error.
      this.#fail(`${frame.subject}: ${text(e)}`);
      await this.#streams!.run(frame, () => {
        throw e;
      });
      return release(msg);
    }
    const relay = new RelayedStream(
      this.#nc,
      {
        subject: this.#route.subject,
        method: frame.subject ?? "",
        args,
        headers: frame.headers,
        window: frame.count ?? DEFAULT_WINDOW,
        timeout: this.#route.timeout,
      },
      this.stat,
      () => this.#relays.delete(relay),
    );
    // Kept from its start until it let go of everything (`gone`); a call whose caller was gone
    // before the stream could start is never sent, and not counted as forwarded.
    let started = false;
    try {
      await this.#streams!.run(frame, (signal) => {
        started = true;
        this.#relays.add(relay);
        return relay.start(signal);
      });
    } catch (e) {
      // The far side's server died or it went silent: the caller's PeerDiedError or TimeoutError.
      if (e instanceof StreamUnanswered) return this.#reject(msg, e.outcome, e.message);
      throw e;
    }
    if (started) {
      const failure = relay.failure;
      if (failure === undefined) this.stat.forwarded++;
      else this.#fail(failure);
    }
    release(msg); // the caller's ack: its stream's last frame is in its reply channel by now
  }

  /** Answers the caller as the far side answered: a value, its RemoteError, or its failure. */
  async #answer(msg: Message<Uint8Array>, frame: Frame, reply: Msg): Promise<void> {
    const status = reply.headers?.get(HEADER.status) || "ok";
    if (status === "ok" || status === REMOTE) {
      let value: unknown;
      try {
        value = packer.decode(reply.data, 0, reply.data.length);
      } catch (e) {
        value = {
          code: "Decode",
          name: "DecodeError",
          message: `the far side's answer is not msgpack: ${text(e)}`,
        };
        await this.#replies!.sendError(frame, value);
        this.#fail(e);
        return release(msg);
      }
      if (status === "ok") {
        await this.#replies!.sendResult(frame, value);
        this.stat.forwarded++;
      } else {
        await this.#replies!.sendError(frame, value);
        this.stat.failed++;
      }
      return release(msg); // the caller's ack: its answer is in its reply channel by now
    }
    const why = `${this.#route.subject}: the far side answered ${status}: ${
      reply.headers?.get(HEADER.error)
    }`;
    const failure = relayedFailure(status, why);
    if ("outcome" in failure) return this.#reject(msg, failure.outcome, failure.why);
    await this.#replies!.sendError(frame, failure.error);
    this.stat.failed++;
    return release(msg);
  }

  /** No answer in time: the caller's send ends in ExpiredError, which its client reports as TimeoutError. */
  #expire(msg: Message<Uint8Array>, why: string): void {
    this.#reject(msg, "Expired", why);
  }

  #reject(msg: Message<Uint8Array>, outcome: "PeerDied" | "Expired", why: string): void {
    this.#fail(why);
    reject(msg, outcome);
  }

  #fail(e: unknown): void {
    this.stat.failed++;
    this.stat.lastError = `service '${this.#route.service}' to '${this.#route.subject}': ${text(e)}`;
  }

  /** Stops taking calls, lets those in flight finish for up to `ms`, then leaves the service. */
  async close(ms: number): Promise<void> {
    this.#stop.abort();
    this.#window.wakeAll();
    await this.#pump;
    // Streams have no end to wait for: each is cancelled on the far side, its caller gets
    // RemoteError "ServerClosed", as from a local server that closes.
    this.#streams?.cancelAll();
    await atMost(this.#window.idle(), ms);
    clearInterval(this.#sweeper);
    for (const relay of this.#relays) relay.close();
    this.#nats.close();
    // Calls still held go back to the request channel, for the service's next server.
    this.#requests?.close();
    this.#requests = undefined;
    await this.#streams?.close();
    this.#replies?.close();
  }
}

/**
 * Largest reply or stream item the servers' side takes from its local service: 1 MiB, nats-server's
 * default max_payload (a larger one is answered as MessageTooLarge below), instead of a client's
 * default 64 KiB, so that a reply a caller's `replyMaxMessageSize` allows is not refused on B. Its
 * cost: the bridge's reply channel (64 frames) may take up to 64 MiB of /dev/shm, but only while
 * large replies need it: pages are taken per frame over 96 bytes (its size rounded up to 4 KiB), and
 * handed back to a low-water mark about a second after the last large one (core/src/channel/alloc.rs);
 * a route of small replies costs about 40 KiB, as before.
 */
const ANSWER_MAX_SIZE = 1 << 20;

/** A call that came in, with the moment its time runs out, counted from its arrival. */
interface Arrived {
  m: Msg;
  deadline: number;
}

/** @internal The servers' side: answers a subject's requests as a client of the local service. */
export class ServiceAnswerer {
  readonly stat: RouteStat;
  readonly #route: CheckedService;
  readonly #nc: NatsConnection;
  readonly #client: Client;
  readonly #window: Window;
  /** Aborted when the bridge closes: calls not started are refused, streamed ones end with "ServerClosed". */
  readonly #stop = new AbortController();
  /**
   * Calls that came in and wait for a place of the window, in order. Held here rather than in the
   * subscription so that each keeps its arrival time: a call that waited past its caller's timeout
   * is not run, and one taken later runs only with the time its caller still waits.
   */
  #queue: (Arrived | undefined)[] = [];
  #head = 0;
  #wake: (() => void) | null = null;
  #subscription: NatsSubscription | undefined;
  #pump: Promise<void> | undefined;

  constructor(route: CheckedService, prefix: string, nc: NatsConnection) {
    this.#route = route;
    this.#nc = nc;
    this.#window = new Window(route.window);
    this.stat = newRouteStat("in", { channel: route.service, subject: route.subject, mode: "service" });
    this.#client = connect(route.service, {
      prefix,
      timeout: route.timeout,
      concurrency: route.window,
      replyMaxMessageSize: ANSWER_MAX_SIZE,
    });
  }

  start(): void {
    this.#subscription = this.#nc.subscribe(this.#route.subject, {
      queue: this.#route.queue,
      callback: (err, m) => {
        if (err) this.stat.lastError = `receiving calls on '${this.#route.subject}': ${text(err)}`;
        else this.#arrive(m);
      },
    });
    this.#pump = this.#run();
  }

  /** A call came in: queued with its deadline (the time its caller's side still waits), or refused when closing. */
  #arrive(m: Msg): void {
    if (this.#stop.signal.aborted) return this.#refuse(m);
    this.#queue.push({ m, deadline: performance.now() + localTimeout(m.headers, this.#route.timeout) });
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** The oldest queued call; undefined once the route closes. */
  async #next(): Promise<Arrived | undefined> {
    for (;;) {
      if (this.#stop.signal.aborted) return undefined;
      const call = this.#shift();
      if (call !== undefined) return call;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  #shift(): Arrived | undefined {
    if (this.#head === this.#queue.length) return undefined;
    const call = this.#queue[this.#head];
    this.#queue[this.#head++] = undefined;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue.splice(0, this.#head); // a queue that never empties does not grow for ever
      this.#head = 0;
    }
    return call;
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    for (;;) {
      const call = await this.#next();
      if (call === undefined) break;
      // A call that ran out of time while queued is not started: its caller's side gave up on it.
      if (call.deadline <= performance.now()) {
        this.#expire(call.m);
        continue;
      }
      // At most a window of calls at once: the rest wait in the queue.
      await this.#window.acquire();
      if (signal.aborted) {
        this.#window.release();
        this.#refuse(call.m);
        break;
      }
      const left = call.deadline - performance.now();
      if (left <= 0) {
        this.#window.release();
        this.#expire(call.m);
        continue;
      }
      this.stat.inFlight++;
      this.#answer(call.m, Math.max(1, Math.floor(left)))
        .catch((e) => this.stat.lastError = text(e))
        .finally(() => {
          this.stat.inFlight--;
          this.#window.release();
        });
    }
    // Closing: what was queued is not started (nor what still comes, see #arrive).
    for (let call = this.#shift(); call !== undefined; call = this.#shift()) this.#refuse(call.m);
  }

  /** A call whose time ran out in the queue: answered as a local call that timed out (the caller's TimeoutError). */
  #expire(m: Msg): void {
    const method = m.headers?.get(HEADER.method) ?? "";
    this.#reply(
      m,
      method,
      new TimeoutError(
        `${this.#route.service}.${method} waited in the bridge's queue on '${this.#route.subject}' ` +
          "until its caller's timeout: not run",
      ),
    );
  }

  /** A call not started when the bridge closes: the caller's RemoteError "ServerClosed", as from a closing server. */
  #refuse(m: Msg): void {
    this.#reply(m, m.headers?.get(HEADER.method) ?? "", closed());
  }

  /** Answers a call that was not run with `e`, as a local call's failure, and counts it. */
  #reply(m: Msg, method: string, e: FerryError): void {
    this.stat.failed++;
    this.stat.lastError = `${this.#route.service}.${method}: ${e.message}`;
    const [payload, headers] = failureReply(e);
    try {
      m.respond(payload, { headers });
    } catch {
      // The connection is closing: the caller's side gives up at its own timeout.
    }
  }

  /** Runs a call, with `timeout` the ms its caller's side still waits (less the margin). */
  async #answer(m: Msg, timeout: number): Promise<void> {
    if (StreamPublisher.isStream(m)) {
      return await new StreamPublisher(this.#nc, this.#client, m, this.#route.timeout, this.stat).run(
        this.#stop.signal,
        timeout,
      );
    }
    const method = m.headers?.get(HEADER.method) ?? "";
    const [payload, outcome] = await this.#outcome(method, m.data, timeout, ownHeaders(m.headers));
    try {
      m.respond(payload, outcome === undefined ? undefined : { headers: outcome });
    } catch (e) {
      if (!tooLarge(e)) throw e;
      // A value larger than the NATS server takes: the caller gets why, instead of no answer.
      this.stat.forwarded--;
      this.stat.failed++;
      this.stat.lastError = `${this.#route.service}.${method}: ${TOO_LARGE} (${payload?.length} bytes)`;
      m.respond(packer.encode(tooLargePayload(`the result of ${method}`)), { headers: replyHeaders(REMOTE) });
    }
  }

  /** The local call's answer as a reply: its value (no status header: "ok"), or its failure. */
  async #outcome(
    method: string,
    data: Uint8Array,
    timeout: number,
    headers: Record<string, string>,
  ): Promise<[Uint8Array | undefined, MsgHdrs | undefined]> {
    try {
      const args = data.length === 0 ? undefined : packer.decode(data, 0, data.length);
      const value = await this.#client.call(method, args, { timeout, headers });
      const bytes = packer.encode(value);
      this.stat.forwarded++;
      return [bytes, undefined];
    } catch (e) {
      this.stat.failed++;
      this.stat.lastError = `${this.#route.service}.${method}: ${text(e)}`;
      return failureReply(e);
    }
  }

  /**
   * Stops taking calls, refuses at once those not started ("ServerClosed"), lets those in flight
   * answer for up to `ms`, then leaves the service.
   */
  async close(ms: number): Promise<void> {
    // Streams end at once ("ServerClosed"): they have no end to wait for.
    this.#stop.abort();
    this.#window.wakeAll();
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
    await this.#pump;
    const started = performance.now();
    // Calls NATS still delivers until the unsubscribe reaches it are refused as they come.
    if (this.#subscription !== undefined) await drainWithin(this.#subscription, ms);
    await atMost(this.#window.idle(), Math.max(0, ms - (performance.now() - started)));
    this.#client.close();
  }
}
