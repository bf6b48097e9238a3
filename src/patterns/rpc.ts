// Request/response and streamed replies over channels. A service is one request channel
// (`<service>!call`) that every server of the service receives from, competing: whoever is free
// takes the next call. A client sends each call in ack mode and the server releases it only after
// its reply is written, so the ack says whether the server finished (the reply is waiting in the
// client's reply channel) or died holding the call (PeerDiedError). Replies come back on the
// client's own small reply channel (`<service>!reply.<pid>.<random>`); stream items too, paced by
// credits the client sends to the serving process's control channel (`<service>!ctl.<pid>.<random>`).

import { Channel } from "../channel/channel.ts";
import type { ChannelStat } from "../channel/observe.ts";
import {
  ChannelClosedError,
  ChannelFullError,
  ChannelNotFoundError,
  EncodeError,
  ExpiredError,
  FerryError,
  InvalidOptionError,
  MessageTooLargeError,
  PeerDiedError,
  TimeoutError,
} from "../errors.ts";
import type { Message } from "../message.ts";
import { abortable, abortReason } from "./abort.ts";
import { type Frame, FrameKind, FrameWriter, readFrame } from "./headers.ts";
import {
  checkBase,
  openShared,
  ownerAlive,
  privateName,
  reclaimIfOrphaned,
  sweepPrivate,
} from "./private_channels.ts";

const KiB = 1024;
/** Request channel, if a server or client creates it: 128 calls queued or in progress, 64 KiB each (8 MiB). */
const REQUEST_CAPACITY = 128;
const REQUEST_MAX_SIZE = 64 * KiB;
/** Reply channel per client: 64 replies or stream items of up to 64 KiB (4 MiB of /dev/shm). */
const REPLY_CAPACITY = 64;
const REPLY_MAX_SIZE = 64 * KiB;
/** Control channel per server: credits and cancels, a few dozen bytes each (64 KiB). */
const CONTROL_CAPACITY = 64;
const CONTROL_MAX_SIZE = KiB;
/** Stream items a client lets a server send ahead of what it consumed. */
const DEFAULT_WINDOW = 32;
/** How often an idle receive loop looks up from its wait (to stop when nothing needs it). */
const POLL_MS = 250;
/** How often a server checks that the clients it holds reply channels of are alive. */
const SWEEP_MS = 1000;
const DEFAULT_TIMEOUT = 5000;

/** Removes the reply and control channels of `service` whose owners died. */
function sweepService(prefix: string, service: string): void {
  sweepPrivate(prefix, `${service}!reply.`);
  sweepPrivate(prefix, `${service}!ctl.`);
}

/** The channel a service's calls arrive on. */
export function requestChannelName(service: string): string {
  return `${service}!call`;
}

/**
 * A handler threw, or the server could not run the call: `remoteCode` is the thrown error's `code`
 * (or its name), `message` its message. Codes ferry itself sends: "UnknownMethod", "StreamingMethod"
 * (use `stream()`), "ReplyTooLarge", "Encode" (the result cannot be sent), "ServerClosed".
 */
export class RemoteError extends FerryError {
  /** The error's code on the server: its `code` property if it had one, else its name. */
  readonly remoteCode: string;
  /** The error's class name on the server. */
  readonly remoteName: string;
  /** Service and method of the call. */
  readonly service: string;
  /** The method called. */
  readonly method: string;
  /** @internal Built by the client from an error frame. */
  constructor(service: string, method: string, remote: { code?: string; name?: string; message?: string }) {
    super(
      "Remote",
      `${service}.${method} failed on the server: ${remote.message ?? "(no message)"} [${
        remote.code ?? remote.name
      }]`,
    );
    this.remoteCode = String(remote.code ?? remote.name ?? "Error");
    this.remoteName = String(remote.name ?? "Error");
    this.service = service;
    this.method = method;
  }
}

/** What a handler gets besides its argument. */
export interface CallContext {
  /** The service name. */
  readonly service: string;
  /** The method called. */
  readonly method: string;
  /** The caller's own headers (trace context, idempotency keys). */
  readonly headers: Record<string, string>;
  /** Aborted when the caller cancels a stream or the server closes: stop work then. */
  readonly signal: AbortSignal;
  /** Times this call was sent before: 0, or the retries of an idempotent call whose servers died. */
  readonly attempt: number;
}

/**
 * A method: returns a value (or a promise of one), or is an async generator (or returns an async
 * iterable), which makes it a streamed method for `client.stream()`.
 */
// deno-lint-ignore no-explicit-any
export type Handler = (args: any, ctx: CallContext) => unknown;

/** Options of `serve`. */
export interface ServeOptions {
  /** Namespace. Default "ferry". */
  prefix?: string;
  /**
   * Calls (unary or streams) this server runs at once; it takes the next call only when it has a
   * free place, so servers that are busy leave calls to those that are not. Default 1.
   */
  concurrency?: number;
  /** Capacity of the request channel, if this call creates it. Default 128. */
  capacity?: number;
  /** Largest request in bytes, if this call creates the request channel. Default 64 KiB. */
  maxMessageSize?: number;
  /** Milliseconds a reply waits for room in a full reply channel before it is dropped. Default 5000. */
  replyTimeout?: number;
}

/** Options of `connect`. */
export interface ConnectOptions {
  /** Namespace. Default "ferry". */
  prefix?: string;
  /** Default per-call timeout in milliseconds (Infinity: none). Default 5000. */
  timeout?: number;
  /** Calls this client has in flight at once (1..32); more wait for one to finish. Default 32. */
  concurrency?: number;
  /** Capacity of the request channel, if this call creates it. Default 128. */
  capacity?: number;
  /** Largest request in bytes, if this call creates the request channel. Default 64 KiB. */
  maxMessageSize?: number;
  /** Capacity of this client's reply channel. Default 64. */
  replyCapacity?: number;
  /** Largest reply or stream item in bytes. Default 64 KiB (the reply channel reserves capacity x this). */
  replyMaxMessageSize?: number;
}

/** Options of one call. */
export interface CallOptions {
  /** Milliseconds to wait for the reply (Infinity: no limit). Default: the client's timeout. */
  timeout?: number;
  /** Aborting rejects the call with the signal's reason; the server is not told (it may still run it). */
  signal?: AbortSignal;
  /** The call may run twice: if the server holding it dies, send it again (up to `retries` times). */
  idempotent?: boolean;
  /** Resends after server deaths for an idempotent call. Default 2. */
  retries?: number;
  /** Your own headers, handed to the handler as `ctx.headers`. */
  headers?: Record<string, string>;
}

/** Options of one stream. */
export interface StreamOptions {
  /** Milliseconds a server may take to start the stream (Infinity: no limit). Default: the client's timeout. */
  timeout?: number;
  /** Aborting ends the iteration with the signal's reason and cancels the generator on the server. */
  signal?: AbortSignal;
  /** Items the server may send ahead of what the loop consumed (backpressure window). Default 32. */
  window?: number;
  /** Your own headers, handed to the handler as `ctx.headers`. */
  headers?: Record<string, string>;
}

function checkCount(what: string, value: number | undefined, fallback: number, min: number, max: number) {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(`${what} must be an integer from ${min} to ${max}, not ${v}`);
  }
  return v;
}

function checkTimeout(what: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || Number.isNaN(v) || v < 0) {
    throw new InvalidOptionError(`${what} must be milliseconds >= 0 (or Infinity), not ${v}`);
  }
  return v;
}

/** A request expires when its caller stops waiting, so no server runs a call nobody awaits. */
function expiryOf(timeoutMs: number): number {
  return timeoutMs === Infinity ? 0 : Math.max(0.001, timeoutMs / 1000);
}

function isAsyncIterable(x: unknown): x is AsyncIterable<unknown> {
  return typeof x === "object" && x !== null && Symbol.asyncIterator in x;
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return typeof x === "object" && x !== null && typeof (x as { then?: unknown }).then === "function";
}

function errorPayload(error: unknown): { code: string; name: string; message: string } {
  if (typeof error === "object" && error !== null) {
    const { code, name, message } = error as { code?: unknown; name?: unknown; message?: unknown };
    const named = typeof name === "string" ? name : "Error";
    return {
      code: typeof code === "string" ? code : named,
      name: named,
      message: typeof message === "string" ? message : String(error),
    };
  }
  return { code: "Error", name: "Error", message: String(error) };
}

// ====================================================================== server

/** One stream a server is sending: its credits, and whether its client cancelled it. */
interface ServerStream {
  credits: number;
  cancelled: boolean;
  wake: (() => void) | null;
  abort: AbortController;
}

/**
 * Serves the methods of `handlers` as `service` until closed. Several processes may serve one
 * service: each call goes to one of them, whichever is free first (a server with `concurrency`
 * calls running takes no more).
 *
 * ```ts
 * await using server = serve("math", {
 *   add: ({ a, b }: { a: number; b: number }) => a + b,
 *   async *count({ n }: { n: number }) { for (let i = 0; i < n; i++) yield i; },
 * });
 * ```
 */
export function serve(
  service: string,
  handlers: Record<string, Handler>,
  options: ServeOptions = {},
): Server {
  return new Server(token, service, handlers, options);
}

/**
 * Opens a client of `service`. It creates its reply channel now; close it (or `using`) to remove it.
 *
 * ```ts
 * using math = connect("math");
 * const sum = await math.call("add", { a: 1, b: 2 });
 * for await (const i of math.stream("count", { n: 3 })) console.log(i);
 * ```
 */
export function connect(service: string, options: ConnectOptions = {}): Client {
  return new Client(token, service, options);
}

const token = Symbol("ferry.rpc");

/** The signal of unary calls, which nothing cancels (made once: an AbortController costs microseconds). */
const NEVER_ABORTED = new AbortController().signal;

/** A running service: `close()` stops taking calls, lets running ones finish and cancels streams. */
export class Server implements AsyncDisposable {
  /** The service name. */
  readonly service: string;
  /** The namespace. */
  readonly prefix: string;
  /** This server's control channel (stream credits and cancels arrive there). */
  readonly controlChannel: string;
  #handlers: Record<string, Handler>;
  #concurrency: number;
  #replyTimeout: number;
  #requests: Channel<Uint8Array>;
  #control: Channel<Uint8Array>;
  #writer = new FrameWriter();
  #replies = new Map<string, Channel<Uint8Array>>();
  #streams = new Map<string, ServerStream>();
  #active = 0;
  #freed: (() => void) | null = null;
  #idle: (() => void) | null = null;
  #closing = false;
  #closed: Promise<void> | null = null;
  #receiving: Promise<void>;
  #controlLoop: Promise<void> | null = null;
  #sweeper: ReturnType<typeof setInterval>;

  /** @internal Use `serve()`. */
  constructor(key: symbol, service: string, handlers: Record<string, Handler>, options: ServeOptions) {
    if (key !== token) throw new TypeError("use serve()");
    this.service = checkBase("service name", service);
    this.prefix = options.prefix ?? "ferry";
    this.#handlers = handlers;
    this.#concurrency = checkCount("concurrency", options.concurrency, 1, 1, 65536);
    this.#replyTimeout = checkTimeout("replyTimeout", options.replyTimeout, DEFAULT_TIMEOUT);
    sweepService(this.prefix, this.service);
    this.#requests = openShared<Uint8Array>(
      requestChannelName(this.service),
      { prefix: this.prefix, codec: "raw", autoRelease: false, timeout: Infinity },
      {
        capacity: options.capacity ?? REQUEST_CAPACITY,
        maxMessageSize: options.maxMessageSize ?? REQUEST_MAX_SIZE,
      },
    );
    this.controlChannel = privateName(this.service, "ctl");
    this.#control = Channel.open<Uint8Array>(this.controlChannel, {
      prefix: this.prefix,
      codec: "raw",
      mode: "async",
      capacity: CONTROL_CAPACITY,
      maxMessageSize: CONTROL_MAX_SIZE,
    });
    this.#sweeper = setInterval(() => this.#sweepReplies(), SWEEP_MS);
    Deno.unrefTimer(Number(this.#sweeper)); // a server's sweeps alone keep no process alive
    this.#receiving = this.#receive();
  }

  /** Calls running now (unary and streams). */
  get active(): number {
    return this.#active;
  }

  async #receive(): Promise<void> {
    while (!this.#closing) {
      if (this.#active >= this.#concurrency) {
        // Take no call while full: another server that is free gets it.
        await new Promise<void>((resolve) => this.#freed = resolve);
        continue;
      }
      let msg: Message<Uint8Array>;
      try {
        msg = await this.#requests.recv({ timeout: POLL_MS });
      } catch (error) {
        if (error instanceof TimeoutError) continue;
        if (error instanceof ChannelClosedError) return;
        throw error;
      }
      this.#dispatch(msg);
    }
  }

  #dispatch(msg: Message<Uint8Array>): void {
    let frame: Frame;
    try {
      frame = readFrame(msg.bytes);
    } catch {
      msg.release(); // not a call: nothing to answer
      return;
    }
    if (
      frame.replyTo === undefined ||
      (frame.kind !== FrameKind.Request && frame.kind !== FrameKind.StreamRequest)
    ) {
      msg.release();
      return;
    }
    this.#active++;
    const done = () => {
      try {
        msg.release(); // the caller's ack: the reply is in its reply channel by now
      } catch {
        // closed meanwhile: the call is redelivered or reported to its caller by the channel
      }
      this.#active--;
      const freed = this.#freed;
      this.#freed = null;
      freed?.();
      if (this.#active === 0) this.#idle?.();
    };
    if (frame.kind === FrameKind.StreamRequest) {
      this.#runStream(frame).finally(done);
      return;
    }
    const sent = this.#runCall(frame);
    if (sent === undefined) done();
    else sent.finally(done);
  }

  #context(frame: Frame, signal: AbortSignal): CallContext {
    return {
      service: this.service,
      method: frame.subject ?? "",
      headers: frame.headers,
      signal,
      attempt: frame.kind === FrameKind.Request ? frame.count ?? 0 : 0,
    };
  }

  #handler(method: string | undefined): Handler | undefined {
    return method !== undefined && Object.hasOwn(this.#handlers, method) ? this.#handlers[method] : undefined;
  }

  /** Runs a unary call; returns a promise only when something had to wait (sync handlers reply at once). */
  #runCall(frame: Frame): Promise<void> | undefined {
    const handler = this.#handler(frame.subject);
    if (handler === undefined) return this.#replyError(frame, this.#unknown(frame.subject));
    let result: unknown;
    try {
      result = handler(frame.data, this.#context(frame, NEVER_ABORTED));
    } catch (error) {
      return this.#replyError(frame, error);
    }
    if (isAsyncIterable(result)) {
      return this.#replyError(frame, {
        code: "StreamingMethod",
        name: "RemoteError",
        message: `${frame.subject} streams its result: call it with client.stream()`,
      });
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        (value) => this.#replyValue(frame, value),
        (error) => this.#replyError(frame, error),
      );
    }
    return this.#replyValue(frame, result);
  }

  #unknown(method: string | undefined) {
    return {
      code: "UnknownMethod",
      name: "RemoteError",
      message: `service '${this.service}' has no method '${method}' (it has: ${
        Object.keys(this.#handlers).join(", ")
      })`,
    };
  }

  #replyValue(frame: Frame, value: unknown): Promise<void> | undefined {
    const sent = this.#sendTo(frame.replyTo!, FrameKind.Reply, frame.id, value);
    return sent instanceof Promise ? sent.then(() => {}) : undefined;
  }

  #replyError(frame: Frame, error: unknown): Promise<void> | undefined {
    const sent = this.#sendTo(frame.replyTo!, FrameKind.Error, frame.id, errorPayload(error));
    return sent instanceof Promise ? sent.then(() => {}) : undefined;
  }

  /** The cached handle on a client's reply channel; undefined once it is gone. */
  #replyChannel(name: string): Channel<Uint8Array> | undefined {
    let ch = this.#replies.get(name);
    if (ch === undefined) {
      try {
        ch = Channel.open<Uint8Array>(name, {
          prefix: this.prefix,
          codec: "raw",
          mode: "async",
          create: false,
        });
      } catch (error) {
        if (error instanceof FerryError) return undefined; // the client is gone (closed or reclaimed)
        throw error;
      }
      this.#replies.set(name, ch);
    }
    return ch;
  }

  /**
   * Sends one frame to a client's reply channel: true once written, false when the client is gone
   * (its channel removed, or its owner dead and the channel full). A value too large or unencodable
   * is answered with an error frame instead. Returns a promise only when it must wait for room.
   */
  #sendTo(replyTo: string, kind: number, id: number, value: unknown): boolean | Promise<boolean> {
    const ch = this.#replyChannel(replyTo);
    if (ch === undefined) return false;
    let bytes: Uint8Array;
    try {
      bytes = this.#writer.encode({ kind, id }, value);
      if (bytes.length > ch.maxMessageSize) {
        throw new MessageTooLargeError(
          `the reply is ${bytes.length} bytes; the client's reply channel takes at most ${ch.maxMessageSize} ` +
            "(connect option replyMaxMessageSize)",
        );
      }
    } catch (error) {
      if (
        kind === FrameKind.Error || !(error instanceof EncodeError || error instanceof MessageTooLargeError)
      ) {
        throw error;
      }
      const code = error instanceof EncodeError ? "Encode" : "ReplyTooLarge";
      bytes = this.#writer.encode({ kind: FrameKind.Error, id }, {
        code,
        name: error.name,
        message: error.message,
      });
    }
    try {
      ch.trySend(bytes);
      return true;
    } catch (error) {
      if (!(error instanceof ChannelFullError)) return this.#dropReply(replyTo, error);
    }
    return this.#sendWaiting(replyTo, ch, bytes.slice());
  }

  async #sendWaiting(replyTo: string, ch: Channel<Uint8Array>, bytes: Uint8Array): Promise<boolean> {
    const deadline = performance.now() + this.#replyTimeout;
    for (;;) {
      try {
        await ch.send(bytes, { timeout: Math.min(SWEEP_MS, Math.max(0, deadline - performance.now())) });
        return true;
      } catch (error) {
        // Still full when the slice ended (send reports that as ChannelFullError).
        if (!(error instanceof ChannelFullError)) return this.#dropReply(replyTo, error);
      }
      // Full for a while: a dead client never drains it.
      if (this.#reclaim(replyTo) || performance.now() >= deadline) return false;
    }
  }

  #dropReply(replyTo: string, error: unknown): false {
    if (error instanceof ChannelClosedError || error instanceof FerryError) {
      this.#forget(replyTo);
      return false;
    }
    throw error;
  }

  #forget(name: string): void {
    this.#replies.get(name)?.close();
    this.#replies.delete(name);
  }

  /** Removes a client's reply channel if its owner is dead; true if it did (or it was gone). */
  #reclaim(name: string): boolean {
    const ch = this.#replies.get(name);
    let stat: ChannelStat | undefined;
    try {
      stat = ch?.stat();
    } catch {
      stat = undefined;
    }
    if (stat !== undefined && ownerAlive(stat)) return false;
    this.#forget(name);
    reclaimIfOrphaned(name, this.prefix);
    return true;
  }

  #sweepReplies(): void {
    for (const name of [...this.#replies.keys()]) this.#reclaim(name);
  }

  // ---------------------------------------------------------------- streams

  async #runStream(frame: Frame): Promise<void> {
    const replyTo = frame.replyTo!;
    const key = `${replyTo}#${frame.id}`;
    const stream: ServerStream = {
      credits: frame.count ?? DEFAULT_WINDOW,
      cancelled: false,
      wake: null,
      abort: new AbortController(),
    };
    this.#streams.set(key, stream);
    this.#controlLoop ??= this.#receiveControl();
    let iterator: AsyncIterator<unknown> | undefined;
    try {
      const started = await this.#sendTo(replyTo, FrameKind.StreamStart, frame.id, this.controlChannel);
      if (!started) return;
      const handler = this.#handler(frame.subject);
      if (handler === undefined) {
        await this.#replyError(frame, this.#unknown(frame.subject));
        return;
      }
      let source = handler(frame.data, this.#context(frame, stream.abort.signal));
      if (isThenable(source)) source = await source;
      // A plain value streams as one item.
      iterator = isAsyncIterable(source) ? source[Symbol.asyncIterator]() : (async function* () {
        yield source;
      })();
      for (;;) {
        while (stream.credits === 0 && !stream.cancelled) await this.#awaitCredit(stream, replyTo);
        if (stream.cancelled) break;
        const next = await iterator.next();
        if (stream.cancelled) break;
        if (next.done) {
          iterator = undefined;
          await this.#sendTo(replyTo, FrameKind.End, frame.id, undefined);
          return;
        }
        const sent = this.#sendTo(replyTo, FrameKind.Item, frame.id, next.value);
        if (sent === false || (sent !== true && !await sent)) { // awaited only when it had to wait for room
          stream.cancelled = true; // the client is gone
          break;
        }
        stream.credits--;
      }
      if (this.#closing) {
        await this.#replyError(frame, {
          code: "ServerClosed",
          name: "RemoteError",
          message: "the server closed",
        });
      }
    } catch (error) {
      iterator = undefined; // a generator that threw is finished
      await this.#replyError(frame, error);
    } finally {
      this.#streams.delete(key);
      stream.abort.abort();
      await iterator?.return?.();
    }
  }

  /** Waits for a credit or a cancel; every SWEEP_MS checks that the client still lives. */
  async #awaitCredit(stream: ServerStream, replyTo: string): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const woke = await new Promise<boolean>((resolve) => {
      stream.wake = () => resolve(true);
      timer = setTimeout(() => resolve(false), SWEEP_MS);
    });
    clearTimeout(timer);
    stream.wake = null;
    if (!woke && stream.credits === 0 && !stream.cancelled && this.#reclaim(replyTo)) stream.cancelled = true;
  }

  /** Routes credits and cancels to the streams this server is sending, while it sends any. */
  async #receiveControl(): Promise<void> {
    try {
      while (this.#streams.size > 0) {
        let batch: Message<Uint8Array>[];
        try {
          batch = await this.#control.recvMany(64, { timeout: POLL_MS });
        } catch (error) {
          if (error instanceof TimeoutError) continue;
          if (error instanceof ChannelClosedError) return;
          throw error;
        }
        for (const msg of batch) {
          let frame: Frame;
          try {
            frame = readFrame(msg.bytes);
          } catch {
            continue;
          }
          const stream = this.#streams.get(`${frame.replyTo}#${frame.id}`);
          if (stream === undefined) continue;
          if (frame.kind === FrameKind.Credit) stream.credits += frame.count ?? 0;
          else if (frame.kind === FrameKind.Cancel) {
            stream.cancelled = true;
            stream.abort.abort(new FerryError("Cancelled", "the caller cancelled the stream"));
          }
          stream.wake?.();
        }
      }
    } finally {
      this.#controlLoop = null;
    }
  }

  /**
   * Stops taking calls, cancels running streams (their callers get RemoteError "ServerClosed"), waits
   * for running unary calls to reply, then leaves every channel and removes the control channel.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    for (const stream of this.#streams.values()) {
      stream.cancelled = true;
      stream.abort.abort(new FerryError("ServerClosed", "the server is closing"));
      stream.wake?.();
    }
    const freed = this.#freed;
    this.#freed = null;
    freed?.();
    await this.#receiving; // within POLL_MS, or once a place frees
    if (this.#active > 0) await new Promise<void>((resolve) => this.#idle = resolve);
    clearInterval(this.#sweeper);
    this.#requests.close();
    this.#control.close();
    await this.#controlLoop;
    for (const ch of this.#replies.values()) ch.close();
    this.#replies.clear();
    Channel.unlink(this.controlChannel, { prefix: this.prefix });
  }

  /** As `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

// ====================================================================== client

/** A call waiting for its reply frame. */
interface PendingCall {
  stream: false;
  reply: Frame | undefined;
}

/** A stream being received: frames queued for the loop, and how its request's ack ended. */
class PendingStream {
  readonly stream = true;
  readonly frames: Frame[] = [];
  head = 0;
  /** The server's control channel, from its StreamStart frame. */
  control: string | undefined;
  /** undefined while the server holds the request; then null (released) or the ack's error. */
  acked: Error | null | undefined = undefined;
  #wake: (() => void) | null = null;

  push(frame: Frame): void {
    if (frame.kind === FrameKind.StreamStart) this.control = frame.data as string;
    else this.frames.push(frame);
    this.wake();
  }

  take(): Frame | undefined {
    if (this.head === this.frames.length) return undefined;
    const frame = this.frames[this.head++];
    if (this.head === this.frames.length) {
      this.frames.length = 0;
      this.head = 0;
    }
    return frame;
  }

  wake(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  next(): Promise<void> {
    return new Promise((resolve) => this.#wake = resolve);
  }
}

/** A client of one service: `call`, `stream`, and `close()` (or `using`), which removes its reply channel. */
export class Client implements Disposable {
  /** The service name. */
  readonly service: string;
  /** The namespace. */
  readonly prefix: string;
  /** This client's reply channel. */
  readonly replyChannel: string;
  /** Default per-call timeout in milliseconds. */
  readonly timeout: number;
  #requests: Channel<Uint8Array>;
  #replies: Channel<Uint8Array>;
  #writer = new FrameWriter();
  #pending = new Map<number, PendingCall | PendingStream>();
  #nextId = 0;
  #controls = new Map<string, Channel<Uint8Array>>();
  /** Streams given up before the server said which it is: cancelled when its StreamStart comes. */
  #abandoned = new Set<number>();
  #streams = 0;
  #pumping: Promise<void> | null = null;
  #closed = false;

  /** @internal Use `connect()`. */
  constructor(key: symbol, service: string, options: ConnectOptions) {
    if (key !== token) throw new TypeError("use connect()");
    this.service = checkBase("service name", service);
    this.prefix = options.prefix ?? "ferry";
    this.timeout = checkTimeout("timeout", options.timeout, DEFAULT_TIMEOUT);
    const concurrency = checkCount("concurrency", options.concurrency, 32, 1, 32);
    // Private channels of clients and servers that died are removed here, so that none outlives
    // its owner for longer than the next connect (servers also reclaim the ones they reply to).
    sweepService(this.prefix, this.service);
    this.#requests = openShared<Uint8Array>(
      requestChannelName(this.service),
      { prefix: this.prefix, codec: "raw", mode: "ack", slots: concurrency, timeout: this.timeout },
      {
        capacity: options.capacity ?? REQUEST_CAPACITY,
        maxMessageSize: options.maxMessageSize ?? REQUEST_MAX_SIZE,
      },
    );
    this.replyChannel = privateName(this.service, "reply");
    try {
      this.#replies = Channel.open<Uint8Array>(this.replyChannel, {
        prefix: this.prefix,
        codec: "raw",
        mode: "async",
        capacity: checkCount("replyCapacity", options.replyCapacity, REPLY_CAPACITY, 1, 65536),
        maxMessageSize: checkCount(
          "replyMaxMessageSize",
          options.replyMaxMessageSize,
          REPLY_MAX_SIZE,
          64,
          1 << 30,
        ),
      });
    } catch (error) {
      this.#requests.close();
      throw error;
    }
  }

  #id(): number {
    this.#nextId = this.#nextId >= 0xffff_ffff ? 1 : this.#nextId + 1;
    return this.#nextId;
  }

  /** Routes every reply frame queued now to the call or stream it answers. */
  #drain(): void {
    for (;;) {
      const batch = this.#replies.tryRecvMany(64);
      if (batch.length === 0) return;
      for (const msg of batch) this.#route(msg.bytes);
    }
  }

  #route(bytes: Uint8Array): void {
    let frame: Frame;
    try {
      frame = readFrame(bytes);
    } catch {
      return; // not ours to read
    }
    const pending = this.#pending.get(frame.id);
    if (pending === undefined) {
      if (frame.kind === FrameKind.StreamStart && this.#abandoned.delete(frame.id)) {
        this.#sendControl(frame.data as string, FrameKind.Cancel, frame.id);
      }
      return; // the answer to a call given up on (timeout, abort): dropped
    }
    if (pending.stream) pending.push(frame);
    else pending.reply = frame;
  }

  /**
   * Calls `method` with `args` and resolves with its result. Rejects with RemoteError (the handler
   * threw), PeerDiedError (the server died holding the call; it may have run), TimeoutError (no
   * reply within `timeout`), or the signal's reason when `signal` aborts.
   */
  async call<R = unknown>(method: string, args?: unknown, options: CallOptions = {}): Promise<R> {
    const timeout = checkTimeout("timeout", options.timeout, this.timeout);
    const retries = options.idempotent ? checkCount("retries", options.retries, 2, 0, 1000) : 0;
    options.signal?.throwIfAborted();
    for (let attempt = 0;; attempt++) {
      const id = this.#id();
      const pending: PendingCall = { stream: false, reply: undefined };
      this.#pending.set(id, pending);
      try {
        const bytes = this.#writer.encode(
          {
            kind: FrameKind.Request,
            id,
            replyTo: this.replyChannel,
            subject: method,
            count: attempt,
            headers: options.headers,
          },
          args,
        );
        // The server releases the request after writing the reply, so a settled ack means the
        // reply is in the reply channel, or the server died first (PeerDiedError).
        let failure: unknown;
        try {
          await abortable(this.#requests.send(bytes, { timeout, expiry: expiryOf(timeout) }), options.signal);
        } catch (error) {
          failure = error;
        }
        if (pending.reply === undefined && !this.#closed) this.#drain();
        if (pending.reply !== undefined) return this.#result(pending.reply, method) as R;
        if (failure === undefined) {
          throw new FerryError(
            "NoReply",
            `${this.service}.${method}: the server took the call and sent no reply (was it closing?)`,
          );
        }
        if (failure instanceof PeerDiedError) {
          if (attempt < retries) continue;
          throw new PeerDiedError(
            `the server running ${this.service}.${method} died before replying; the call may have run. ` +
              (options.idempotent
                ? `It was sent ${attempt + 1} times.`
                : "Pass idempotent: true to retry it."),
          );
        }
        if (failure instanceof TimeoutError || failure instanceof ExpiredError) {
          throw new TimeoutError(
            `${this.service}.${method}: no reply within ${timeout} ms ` +
              "(is a server running? `cli.ts services` lists them; a slow handler needs a longer timeout)",
          );
        }
        throw failure;
      } finally {
        this.#pending.delete(id);
      }
    }
  }

  #result(frame: Frame, method: string): unknown {
    if (frame.kind === FrameKind.Error) {
      throw new RemoteError(this.service, method, frame.data as { code?: string; message?: string });
    }
    return frame.data;
  }

  /**
   * Calls a streamed `method` and yields its items as they come, with backpressure: the server
   * sends at most `window` items ahead of this loop. Breaking out of the loop or aborting cancels
   * the generator on the server. The loop ends cleanly at the stream's end; it throws PeerDiedError
   * if the server dies mid-stream, RemoteError if the generator threw.
   */
  stream<R = unknown>(
    method: string,
    args?: unknown,
    options: StreamOptions = {},
  ): AsyncGenerator<R, void, undefined> {
    const timeout = checkTimeout("timeout", options.timeout, this.timeout);
    const window = checkCount("window", options.window, DEFAULT_WINDOW, 1, 65536);
    return this.#stream<R>(method, args, timeout, window, options);
  }

  async *#stream<R>(
    method: string,
    args: unknown,
    timeout: number,
    window: number,
    options: StreamOptions,
  ): AsyncGenerator<R, void, undefined> {
    const signal = options.signal;
    signal?.throwIfAborted();
    const id = this.#id();
    const stream = new PendingStream();
    const bytes = this.#writer.encode(
      {
        kind: FrameKind.StreamRequest,
        id,
        replyTo: this.replyChannel,
        subject: method,
        count: window,
        headers: options.headers,
      },
      args,
    );
    this.#pending.set(id, stream);
    // The server holds the request for the whole stream: its ack settles at the end, or with
    // PeerDiedError if the server dies. `timeout` bounds only the wait for a server to take it.
    const acked = this.#requests.send(bytes, { timeout: Infinity, expiry: expiryOf(timeout) });
    acked.then(() => stream.acked = null, (error) => stream.acked = error).finally(() => stream.wake());
    this.#streams++;
    this.#pumping ??= this.#pump();
    const onAbort = () => stream.wake();
    signal?.addEventListener("abort", onAbort);
    const credit = Math.max(1, window >> 1);
    let consumed = 0;
    let finished = false;
    try {
      for (;;) {
        const frame = stream.take();
        if (frame !== undefined) {
          if (frame.kind === FrameKind.Item) {
            if (++consumed >= credit && stream.control !== undefined) {
              this.#sendControl(stream.control, FrameKind.Credit, id, consumed);
              consumed = 0;
            }
            yield frame.data as R;
            continue;
          }
          finished = true;
          if (frame.kind === FrameKind.End) return;
          if (frame.kind === FrameKind.Error) this.#result(frame, method);
          continue;
        }
        if (signal?.aborted) throw abortReason(signal);
        if (this.#closed) throw new ChannelClosedError(`client of '${this.service}' is closed`);
        if (stream.acked !== undefined) {
          this.#drain(); // frames written before the server released (or died) are all queued now
          if (stream.head < stream.frames.length) continue;
          finished = true;
          const error = stream.acked;
          if (error instanceof PeerDiedError) {
            throw new PeerDiedError(
              `the server streaming ${this.service}.${method} died mid-stream (no end frame came)`,
            );
          }
          if (error instanceof ExpiredError || error instanceof TimeoutError) {
            throw new TimeoutError(
              `${this.service}.${method}: no server took the stream within ${timeout} ms (is one running?)`,
            );
          }
          if (error !== null) throw error;
          throw new FerryError(
            "NoReply",
            `${this.service}.${method}: the stream stopped without an end frame`,
          );
        }
        await stream.next();
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#pending.delete(id);
      this.#streams--;
      if (!finished) {
        // Left early (break, abort, an exception in the loop): stop the generator on the server.
        if (stream.control !== undefined) this.#sendControl(stream.control, FrameKind.Cancel, id);
        else this.#abandoned.add(id);
      }
    }
  }

  /** Receives reply frames for streams while any is open (calls need none: their ack says when). */
  async #pump(): Promise<void> {
    try {
      while (this.#streams > 0 && !this.#closed) {
        let batch: Message<Uint8Array>[];
        try {
          batch = await this.#replies.recvMany(64, { timeout: POLL_MS });
        } catch (error) {
          if (error instanceof TimeoutError) continue;
          if (error instanceof ChannelClosedError) return;
          throw error;
        }
        for (const msg of batch) this.#route(msg.bytes);
      }
    } finally {
      this.#pumping = null;
    }
  }

  /** Sends a credit or cancel to a server's control channel; a server gone is nothing to tell. */
  #sendControl(control: string, kind: number, id: number, count?: number): void {
    if (this.#closed) return;
    let ch = this.#controls.get(control);
    try {
      if (ch === undefined) {
        ch = Channel.open<Uint8Array>(control, {
          prefix: this.prefix,
          codec: "raw",
          mode: "async",
          create: false,
        });
        this.#controls.set(control, ch);
      }
      const bytes = this.#writer.encode({ kind, id, replyTo: this.replyChannel, count });
      ch.send(bytes).catch(() => {}); // copied before send returns; a full control channel waits
    } catch (error) {
      if (!(error instanceof FerryError)) throw error;
      if (error instanceof ChannelNotFoundError) this.#controls.delete(control);
    }
  }

  /**
   * Leaves the service and removes the reply channel. Calls in flight reject with
   * ChannelClosedError; their servers' replies are dropped.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#pending.values()) if (pending.stream) pending.wake();
    this.#requests.close();
    this.#replies.close();
    for (const ch of this.#controls.values()) ch.close();
    this.#controls.clear();
    Channel.unlink(this.replyChannel, { prefix: this.prefix });
  }

  /** As `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
