// Streamed replies, both ends. The server writes StreamStart (naming its control channel), then
// items (several to a frame when its generator has them ready), then an End or Error frame; it sends at most the credits the client granted (its window at
// first, then what the loop consumed), and stops when the client sends Cancel. The client yields
// the items, grants credits as its loop consumes them, and tells a clean end (an End frame) from a
// server that died (the request's ack fails with PeerDiedError): the two are never confused.

import { Channel } from "../../channel/channel.ts";
import { ChannelClosedError, ExpiredError, FerryError, PeerDiedError, TimeoutError } from "../../errors.ts";
import type { Message } from "../../message.ts";
import { abortReason } from "../abort.ts";
import { type Frame, FrameKind, type FrameWriter, readFrame } from "../headers.ts";
import { privateName } from "../private_channels.ts";
import { DEFAULT_WINDOW, isAsyncIterable, isThenable, type StreamOptions } from "./options.ts";
import type { ReplyInbox, ReplyWaiter } from "./reply_inbox.ts";
import type { ReplySender } from "./replies.ts";
import { CONTROL_CAPACITY, CONTROL_MAX_SIZE, expiryOf, POLL_MS, resultOf, SWEEP_MS } from "./wire.ts";

// ====================================================================== server side

/** The largest `streamBatch`. */
export const MAX_STREAM_BATCH = 256;
/**
 * Microtask turns an item may take to come out of the generator and still join the batch: an async
 * generator that has it ready yields it in 2 (4 through a `for await` of another), one that waits
 * for anything else takes a macrotask at least.
 */
const READY_TURNS = 8;

/** Whether `pending` settles within READY_TURNS microtask turns (the generator had the item ready). */
async function settlesSoon(pending: Promise<unknown>): Promise<boolean> {
  let settled = false;
  const mark = () => {
    settled = true;
  };
  pending.then(mark, mark);
  for (let turn = 0; turn < READY_TURNS && !settled; turn++) await null;
  return settled;
}

/**
 * @internal Thrown by a stream's source to end the stream with no frame at all, so that the
 * request's ack tells its caller, as the death of a local server would: a bridge relaying a stream
 * whose far side died ("PeerDied": the caller's PeerDiedError) or went silent ("Expired": its
 * TimeoutError). `run` rethrows it; whoever holds the request rejects it with `outcome`.
 */
export class StreamUnanswered extends Error {
  readonly outcome: "PeerDied" | "Expired";
  constructor(outcome: "PeerDied" | "Expired", message: string) {
    super(message);
    this.name = "StreamUnanswered";
    this.outcome = outcome;
  }
}

/** One stream a server is sending: its credits, and whether its client cancelled it. */
interface SendingStream {
  credits: number;
  cancelled: boolean;
  wake: (() => void) | null;
  abort: AbortController;
}

/** The streams one server sends, and its control channel, where their credits and cancels arrive. */
export class StreamSender {
  /** The control channel's name (StreamStart frames carry it to clients). */
  readonly controlChannel: string;
  #prefix: string;
  #control: Channel<Uint8Array>;
  #replies: ReplySender;
  #streams = new Map<string, SendingStream>();
  #controlLoop: Promise<void> | null = null;
  #closing = false;

  /** Most items per frame (`streamBatch`); 1: each item is written before the generator runs on. */
  #batch: number;

  constructor(service: string, prefix: string, replies: ReplySender, batch: number) {
    this.#prefix = prefix;
    this.#batch = batch;
    this.#replies = replies;
    this.controlChannel = privateName(service, "ctl");
    this.#control = Channel.open<Uint8Array>(this.controlChannel, {
      prefix,
      codec: "raw",
      mode: "async",
      capacity: CONTROL_CAPACITY,
      maxMessageSize: CONTROL_MAX_SIZE,
    });
  }

  /**
   * Runs the streamed call `frame` to its end: `start(signal)` calls the handler (and throws for an
   * unknown method); `signal` aborts when the client cancels or the server closes. Rejects only
   * with a StreamUnanswered the source threw.
   */
  async run(frame: Frame, start: (signal: AbortSignal) => unknown): Promise<void> {
    const replyTo = frame.replyTo!;
    const key = `${replyTo}#${frame.id}`;
    const stream: SendingStream = {
      credits: frame.count ?? DEFAULT_WINDOW,
      cancelled: false,
      wake: null,
      abort: new AbortController(),
    };
    this.#streams.set(key, stream);
    this.#controlLoop ??= this.#receiveControl();
    let iterator: AsyncIterator<unknown> | undefined;
    try {
      const started = await this.#replies.send(replyTo, FrameKind.StreamStart, frame.id, this.controlChannel);
      if (!started) return;
      let source = start(stream.abort.signal);
      if (isThenable(source)) source = await source;
      // A plain value streams as one item.
      iterator = isAsyncIterable(source) ? source[Symbol.asyncIterator]() : (async function* () {
        yield source;
      })();
      // Items the generator has ready go out together, one frame for up to #batch of them (within
      // the credits); the batch is sent before anything waits (a slow generator, no credit). With
      // #batch 1 every item is sent before the generator is resumed.
      let batch: unknown[] = [];
      const delivered = (ok: boolean): boolean => {
        if (!ok) stream.cancelled = true; // the client is gone
        return ok;
      };
      // Sends the batch; a promise only when it had to wait for room.
      const flush = (): boolean | Promise<boolean> => {
        const items = batch;
        batch = [];
        stream.credits -= items.length;
        const sent = this.#sendBatch(replyTo, frame.id, items);
        return typeof sent === "boolean" ? delivered(sent) : sent.then(delivered);
      };
      for (;;) {
        while (stream.credits === batch.length && !stream.cancelled) {
          if (batch.length > 0) await flush();
          else await this.#awaitCredit(stream, replyTo);
        }
        if (stream.cancelled) break;
        const pending = iterator.next();
        if (batch.length > 0 && !await settlesSoon(pending)) {
          const sent = flush(); // the generator is not ready: what it gave goes now
          if (sent !== true && !await sent) break;
        }
        let next: IteratorResult<unknown>;
        try {
          next = await pending;
        } catch (error) {
          if (batch.length > 0) await flush(); // the items before the failure, then its error frame
          throw error;
        }
        if (stream.cancelled) break;
        if (next.done) {
          iterator = undefined;
          if (batch.length > 0) {
            const sent = flush();
            if (sent !== true && !await sent) break;
          }
          await this.#replies.send(replyTo, FrameKind.End, frame.id, undefined);
          return;
        }
        batch.push(next.value);
        if (batch.length === this.#batch) {
          const sent = flush();
          if (sent !== true && !await sent) break;
        }
      }
      if (this.#closing) {
        await this.#replies.sendError(frame, {
          code: "ServerClosed",
          name: "RemoteError",
          message: "the server closed",
        });
      }
    } catch (error) {
      iterator = undefined; // a generator that threw is finished
      if (error instanceof StreamUnanswered) throw error;
      await this.#replies.sendError(frame, error);
    } finally {
      this.#streams.delete(key);
      stream.abort.abort();
      await iterator?.return?.();
    }
  }

  /**
   * Sends `items` (one or more) to the stream's client: one Items frame, or one frame each when
   * the batch is too large for its reply channel. Resolves false once the client is gone.
   */
  #sendBatch(replyTo: string, id: number, items: unknown[]): boolean | Promise<boolean> {
    if (items.length > 1) {
      const sent = this.#replies.sendItems(replyTo, id, items);
      if (sent !== "split") return sent;
    }
    const one = (i: number): boolean | Promise<boolean> => {
      for (; i < items.length; i++) {
        const sent = this.#replies.send(replyTo, FrameKind.Item, id, items[i]);
        if (sent === false) return false;
        if (sent !== true) return sent.then((ok) => ok && one(i + 1));
      }
      return true;
    };
    return one(0);
  }

  /** Waits for a credit or a cancel; every SWEEP_MS checks that the client still lives. */
  async #awaitCredit(stream: SendingStream, replyTo: string): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const woke = await new Promise<boolean>((resolve) => {
      stream.wake = () => resolve(true);
      timer = setTimeout(() => resolve(false), SWEEP_MS);
    });
    clearTimeout(timer);
    stream.wake = null;
    if (!woke && stream.credits === 0 && !stream.cancelled && this.#replies.reclaim(replyTo)) {
      stream.cancelled = true;
    }
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

  /** Cancels every stream: each ends with RemoteError "ServerClosed" for its caller. */
  cancelAll(): void {
    this.#closing = true;
    for (const stream of this.#streams.values()) {
      stream.cancelled = true;
      stream.abort.abort(new FerryError("ServerClosed", "the server is closing"));
      stream.wake?.();
    }
  }

  /** Closes and removes the control channel, once the streams have ended. */
  async close(): Promise<void> {
    this.#control.close();
    await this.#controlLoop;
    Channel.unlink(this.controlChannel, { prefix: this.#prefix });
  }
}

// ====================================================================== client side

/** A stream being received: frames queued for the loop, and how its request's ack ended. */
class ReceivingStream implements ReplyWaiter {
  readonly frames: Frame[] = [];
  head = 0;
  /** The server's control channel, from its StreamStart frame. */
  control: string | undefined;
  /** undefined while the server holds the request; then null (released) or the ack's error. */
  acked: Error | null | undefined = undefined;
  #wake: (() => void) | null = null;

  deliver(frame: Frame): void {
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

/** What a client's stream uses of its client. */
export interface StreamClient {
  readonly service: string;
  readonly requests: Channel<Uint8Array>;
  readonly inbox: ReplyInbox;
  readonly writer: FrameWriter;
}

/** One stream of `client`, as Client.stream() documents it (options already checked). */
export async function* receiveStream<R>(
  client: StreamClient,
  method: string,
  args: unknown,
  timeout: number,
  window: number,
  options: StreamOptions,
): AsyncGenerator<R, void, undefined> {
  const { service, inbox } = client;
  const signal = options.signal;
  signal?.throwIfAborted();
  const id = inbox.nextId();
  const stream = new ReceivingStream();
  const bytes = client.writer.encode(
    {
      kind: FrameKind.StreamRequest,
      id,
      replyTo: inbox.name,
      subject: method,
      count: window,
      headers: options.headers,
    },
    args,
  );
  inbox.expect(id, stream);
  // The server holds the request for the whole stream: its ack settles at the end, or with
  // PeerDiedError if the server dies. `timeout` bounds only the wait for a server to take it.
  const released = client.requests.send(bytes, { timeout: Infinity, expiry: expiryOf(timeout) })
    .then(() => stream.acked = null, (error) => stream.acked = error)
    .finally(() => stream.wake());
  inbox.streamOpened();
  const onAbort = () => stream.wake();
  signal?.addEventListener("abort", onAbort);
  const credit = Math.max(1, window >> 1);
  let consumed = 0;
  let finished = false;
  try {
    for (;;) {
      const frame = stream.take();
      if (frame !== undefined) {
        if (frame.kind === FrameKind.Item || frame.kind === FrameKind.Items) {
          const items = frame.kind === FrameKind.Item ? [frame.data as R] : frame.data as R[];
          for (const item of items) {
            if (++consumed >= credit && stream.control !== undefined) {
              inbox.sendControl(stream.control, FrameKind.Credit, id, consumed);
              consumed = 0;
            }
            yield item;
          }
          continue;
        }
        finished = true;
        if (frame.kind === FrameKind.End) return;
        if (frame.kind === FrameKind.Error) resultOf(frame, service, method);
        continue;
      }
      if (signal?.aborted) throw abortReason(signal);
      if (inbox.closed) throw new ChannelClosedError(`client of '${service}' is closed`);
      if (stream.acked !== undefined) {
        await inbox.settle(); // frames written before the server released (or died) are all here now
        if (stream.head < stream.frames.length) continue;
        finished = true;
        const error = stream.acked;
        if (error instanceof PeerDiedError) {
          throw new PeerDiedError(
            `the server streaming ${service}.${method} died mid-stream (no end frame came)`,
          );
        }
        if (error instanceof ExpiredError || error instanceof TimeoutError) {
          throw new TimeoutError(
            stream.control === undefined
              ? `${service}.${method}: no server took the stream within ${timeout} ms (is one running?)`
              // Taken, then given up by whoever held it (a bridge whose far side went silent).
              : `${service}.${method}: the stream's server stopped answering mid-stream`,
          );
        }
        if (error !== null) throw error;
        throw new FerryError("NoReply", `${service}.${method}: the stream stopped without an end frame`);
      }
      await stream.next();
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    inbox.forget(id);
    // Frames of this stream come until the server lets go of its request (items in flight when it
    // was cancelled, a StreamStart still to cancel): keep receiving them till then, or they would
    // sit in the reply channel and take the room the next replies need.
    released.finally(() => inbox.streamClosed());
    if (!finished) {
      // Left early (break, abort, an exception in the loop): stop the generator on the server.
      if (stream.control !== undefined) inbox.sendControl(stream.control, FrameKind.Cancel, id);
      else inbox.abandon(id);
    }
  }
}
