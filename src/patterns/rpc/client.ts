// The client of a service: `connect` opens the service's request channel and a reply channel of
// its own. A call is an ack-mode request the server releases only after writing its reply, so the
// settled ack says either "the reply is waiting" or "the server died holding the call"
// (PeerDiedError), which an idempotent call answers by sending it again.

import { ExpiredError, FerryError, PeerDiedError, TimeoutError } from "../../errors.ts";
import { abortable } from "../abort.ts";
import { type Frame, FrameKind, FrameWriter } from "../headers.ts";
import { checkBase, openShared } from "../private_channels.ts";
import {
  type CallOptions,
  checkCount,
  checkTimeout,
  type ConnectOptions,
  DEFAULT_TIMEOUT,
  DEFAULT_WINDOW,
  MAX_WINDOW,
  type StreamOptions,
} from "./options.ts";
import { ReplyInbox, type ReplyWaiter } from "./reply_inbox.ts";
import { receiveStream, type StreamClient } from "./streams.ts";
import {
  expiryOf,
  REPLY_CAPACITY,
  REPLY_MAX_SIZE,
  REQUEST_CAPACITY,
  REQUEST_MAX_SIZE,
  requestChannelName,
  resultOf,
  sweepService,
} from "./wire.ts";

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

const token = Symbol("ferry.rpc.client");

/** A call waiting for its reply frame. */
class PendingCall implements ReplyWaiter {
  reply: Frame | undefined = undefined;
  deliver(frame: Frame): void {
    this.reply = frame;
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
  #link: StreamClient;

  /** @internal Use `connect()`. */
  constructor(key: symbol, service: string, options: ConnectOptions) {
    if (key !== token) throw new TypeError("use connect()");
    this.service = checkBase("service name", service);
    this.prefix = options.prefix ?? "ferry";
    this.timeout = checkTimeout("timeout", options.timeout, DEFAULT_TIMEOUT);
    const concurrency = checkCount("concurrency", options.concurrency, 32, 1, 32);
    const replyCapacity = checkCount("replyCapacity", options.replyCapacity, REPLY_CAPACITY, 1, 65536);
    const replyMaxSize = checkCount(
      "replyMaxMessageSize",
      options.replyMaxMessageSize,
      REPLY_MAX_SIZE,
      64,
      1 << 30,
    );
    // Private channels of clients and servers that died are removed here, so that none outlives
    // its owner for longer than the next connect (servers also reclaim the ones they reply to).
    sweepService(this.prefix, this.service);
    const requests = openShared<Uint8Array>(
      requestChannelName(this.service),
      { prefix: this.prefix, codec: "raw", mode: "ack", slots: concurrency, timeout: this.timeout },
      {
        capacity: options.capacity ?? REQUEST_CAPACITY,
        maxMessageSize: options.maxMessageSize ?? REQUEST_MAX_SIZE,
      },
    );
    let inbox: ReplyInbox;
    try {
      inbox = new ReplyInbox(this.service, this.prefix, replyCapacity, replyMaxSize);
    } catch (error) {
      requests.close();
      throw error;
    }
    this.replyChannel = inbox.name;
    this.#link = { service: this.service, requests, inbox, writer: new FrameWriter() };
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
    const { inbox, requests, writer } = this.#link;
    for (let attempt = 0;; attempt++) {
      const id = inbox.nextId();
      const pending = new PendingCall();
      inbox.expect(id, pending);
      try {
        const bytes = writer.encode(
          {
            kind: FrameKind.Request,
            id,
            replyTo: inbox.name,
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
          await abortable(requests.send(bytes, { timeout, expiry: expiryOf(timeout) }), options.signal);
        } catch (error) {
          failure = error;
        }
        if (pending.reply === undefined) {
          // Released by the server: its reply was written first, so it is here (or the server
          // was closing). Else only what is queued: a timeout or an abort must not wait.
          if (failure === undefined) await inbox.settle();
          else inbox.drain();
        }
        if (pending.reply !== undefined) return resultOf(pending.reply, this.service, method) as R;
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
        inbox.forget(id);
      }
    }
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
    const window = checkCount("window", options.window, DEFAULT_WINDOW, 1, MAX_WINDOW);
    return receiveStream<R>(this.#link, method, args, timeout, window, options);
  }

  /**
   * Leaves the service and removes the reply channel. Calls in flight reject with
   * ChannelClosedError; their servers' replies are dropped.
   */
  close(): void {
    const { inbox, requests } = this.#link;
    if (inbox.closed) return;
    inbox.close();
    requests.close();
  }

  /** As `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
