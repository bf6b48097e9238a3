// The server of a service: every server of a service receives from its request channel
// (`<service>!call`), competing, and takes a call only when it has a free place (`concurrency`),
// so whoever is free takes the next one. It releases a request only after its reply is written:
// that release is the caller's ack. Streamed calls run in streams.ts, replies go out through
// replies.ts.

import type { Channel } from "../../channel/channel.ts";
import { ChannelClosedError, TimeoutError } from "../../errors.ts";
import type { Message } from "../../message.ts";
import { type Frame, FrameKind, readFrame } from "../headers.ts";
import { checkBase, openShared } from "../private_channels.ts";
import {
  type CallContext,
  checkCount,
  checkTimeout,
  DEFAULT_TIMEOUT,
  type Handler,
  isAsyncIterable,
  isThenable,
  type ServeOptions,
} from "./options.ts";
import { ReplySender } from "./replies.ts";
import { MAX_STREAM_BATCH, StreamSender } from "./streams.ts";
import {
  type ErrorPayload,
  POLL_MS,
  REQUEST_CAPACITY,
  REQUEST_MAX_SIZE,
  requestChannelName,
  SWEEP_MS,
  sweepService,
} from "./wire.ts";

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

const token = Symbol("ferry.rpc.server");

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
  #requests: Channel<Uint8Array>;
  #replies: ReplySender;
  #streams: StreamSender;
  #active = 0;
  #freed: (() => void) | null = null;
  #idle: (() => void) | null = null;
  #closing = false;
  #closed: Promise<void> | null = null;
  #receiving: Promise<void>;
  #sweeper: ReturnType<typeof setInterval>;

  /** @internal Use `serve()`. */
  constructor(key: symbol, service: string, handlers: Record<string, Handler>, options: ServeOptions) {
    if (key !== token) throw new TypeError("use serve()");
    this.service = checkBase("service name", service);
    this.prefix = options.prefix ?? "ferry";
    this.#handlers = handlers;
    this.#concurrency = checkCount("concurrency", options.concurrency, 1, 1, 65536);
    const replyTimeout = checkTimeout("replyTimeout", options.replyTimeout, DEFAULT_TIMEOUT);
    sweepService(this.prefix, this.service);
    this.#requests = openShared<Uint8Array>(
      requestChannelName(this.service),
      { prefix: this.prefix, codec: "raw", autoRelease: false, timeout: Infinity },
      {
        capacity: options.capacity ?? REQUEST_CAPACITY,
        maxMessageSize: options.maxMessageSize ?? REQUEST_MAX_SIZE,
      },
    );
    this.#replies = new ReplySender(this.prefix, replyTimeout);
    const batch = checkCount("streamBatch", options.streamBatch, 1, 1, MAX_STREAM_BATCH);
    this.#streams = new StreamSender(this.service, this.prefix, this.#replies, batch);
    this.controlChannel = this.#streams.controlChannel;
    this.#sweeper = setInterval(() => this.#replies.sweep(), SWEEP_MS);
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
      this.#streams.run(frame, (signal) => {
        const handler = this.#handler(frame.subject);
        if (handler === undefined) throw this.#unknown(frame.subject);
        return handler(frame.data, this.#context(frame, signal));
      }).finally(done);
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

  #unknown(method: string | undefined): ErrorPayload {
    return {
      code: "UnknownMethod",
      name: "RemoteError",
      message: `service '${this.service}' has no method '${method}' (it has: ${
        Object.keys(this.#handlers).join(", ")
      })`,
    };
  }

  /** Runs a unary call; returns a promise only when something had to wait (sync handlers reply at once). */
  #runCall(frame: Frame): Promise<void> | undefined {
    const handler = this.#handler(frame.subject);
    if (handler === undefined) return this.#replies.sendError(frame, this.#unknown(frame.subject));
    let result: unknown;
    try {
      result = handler(frame.data, this.#context(frame, NEVER_ABORTED));
    } catch (error) {
      return this.#replies.sendError(frame, error);
    }
    if (isAsyncIterable(result)) {
      return this.#replies.sendError(frame, {
        code: "StreamingMethod",
        name: "RemoteError",
        message: `${frame.subject} streams its result: call it with client.stream()`,
      });
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        (value) => this.#replies.sendResult(frame, value),
        (error) => this.#replies.sendError(frame, error),
      );
    }
    return this.#replies.sendResult(frame, result);
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
    this.#streams.cancelAll();
    const freed = this.#freed;
    this.#freed = null;
    freed?.();
    await this.#receiving; // within POLL_MS, or once a place frees
    if (this.#active > 0) await new Promise<void>((resolve) => this.#idle = resolve);
    clearInterval(this.#sweeper);
    this.#requests.close();
    await this.#streams.close();
    this.#replies.close();
  }

  /** As `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
