// Demultiplexed streams: many logical streams over one channel, each message carrying its stream key
// in the frame header, routed in the receiving process to a consumer per key (an async iterator or a
// handler), or to a default handler for keys nobody asked for. One reader pulls from the channel and
// holds each message unreleased until its consumer is done with it, so what is buffered counts
// against the channel's capacity and a receiver that dies has it all redelivered.

import { Channel } from "../channel/channel.ts";
import type { OpenOptions } from "../channel/options.ts";
import { ChannelClosedError, FerryError, InvalidOptionError } from "../errors.ts";
import type { Message } from "../message.ts";
import { type Frame, FrameWriter, readFrame } from "./headers.ts";

/** Options of `demux`: the channel's options (codec, autoRelease and zeroCopy are the pattern's own). */
export interface DemuxOptions extends Omit<OpenOptions<Uint8Array>, "codec" | "autoRelease" | "zeroCopy"> {
  /**
   * Messages one key may have waiting for its consumer before the reader stops taking more from the
   * channel (for every key: per-key order forbids skipping ahead). Default 64.
   */
  buffer?: number;
}

/** One message of a keyed stream. */
export interface KeyedMessage<T = unknown> {
  /** The stream key. */
  key: string;
  /** The value. */
  data: T;
  /** The sender's own headers. */
  headers: Record<string, string>;
  /** The sending process. */
  sender: number;
  /** True when a receiver died holding it and it was delivered again. */
  redelivered: boolean;
}

/** A consumer of one key (or of every unclaimed key): handler or iterator. */
export type KeyHandler<T> = (message: KeyedMessage<T>) => unknown;

/** Messages of one key waiting for their consumer, in order. */
class KeyQueue<T> {
  readonly items: { msg: Message<Uint8Array>; keyed: KeyedMessage<T> }[] = [];
  handler: KeyHandler<T> | undefined;
  iterating = false;
  running = false;
  wake: (() => void) | null = null;

  notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}

/** Opens (creating if absent) the demultiplexed channel `name`. */
export function demux<T = unknown>(name: string, options: DemuxOptions = {}): Demux<T> {
  return new Demux<T>(token, name, options);
}

const token = Symbol("ferry.demux");

/**
 * Many keyed streams over one channel. Send with `send(key, value)`; receive per key with
 * `for await (const m of d.stream(key))` or `d.on(key, handler)`, and keys nobody claimed with
 * `d.otherwise(handler)` (without one they are dropped and counted in `unrouted`).
 *
 * Per key, messages arrive in the order each sender sent them. Receive in one process per channel:
 * receivers in several processes compete for messages, so one key's messages would be split.
 */
export class Demux<T = unknown> implements AsyncDisposable {
  /** The channel. */
  readonly channel: Channel<Uint8Array>;
  /** Messages one key may have waiting before the reader stops. */
  readonly buffer: number;
  #writer = new FrameWriter();
  #keys = new Map<string, KeyQueue<T>>();
  #fallback: KeyHandler<T> | undefined;
  #reading: Promise<void> | null = null;
  /** The reader waits here while a key's queue is full. */
  #room: (() => void) | null = null;
  #unrouted = 0;
  #closed = false;

  /** @internal Use `demux()`. */
  constructor(key: symbol, name: string, options: DemuxOptions) {
    if (key !== token) throw new TypeError("use demux()");
    const { buffer, ...channelOptions } = options;
    this.buffer = buffer ?? 64;
    if (!Number.isInteger(this.buffer) || this.buffer < 1) {
      throw new InvalidOptionError(`buffer must be an integer >= 1, not ${this.buffer}`);
    }
    this.channel = Channel.open<Uint8Array>(name, {
      mode: "async",
      ...channelOptions,
      codec: "raw",
      autoRelease: false,
    });
  }

  /** Messages for keys nobody consumed, dropped because no `otherwise` handler was set. */
  get unrouted(): number {
    return this.#unrouted;
  }

  /** Sends `value` on the stream `key` (waits for room like `Channel.send`, in the channel's mode). */
  send(
    key: string,
    value: T,
    options: { headers?: Record<string, string>; timeout?: number } = {},
  ): Promise<void> {
    const bytes = this.#writer.encode({ key, headers: options.headers }, value);
    return this.channel.send(bytes, { timeout: options.timeout });
  }

  /** The messages of `key`, in order, as they come; each is released after the loop body. */
  async *stream(key: string): AsyncGenerator<KeyedMessage<T>, void, undefined> {
    const queue = this.#claim(key);
    if (queue.iterating || queue.handler !== undefined) {
      throw new FerryError("KeyTaken", `stream '${key}' already has a consumer in this process`);
    }
    queue.iterating = true;
    this.#read();
    try {
      for (;;) {
        if (this.#closed) return; // what was taken and not consumed is redelivered by the close
        const item = queue.items.shift();
        if (item === undefined) {
          await new Promise<void>((resolve) => queue.wake = resolve);
          continue;
        }
        this.#roomMade();
        try {
          yield item.keyed;
        } finally {
          this.#release(item.msg);
        }
      }
    } finally {
      queue.iterating = false;
      this.#abandon(key, queue);
    }
  }

  /** A key whose loop ended: the default handler takes its messages, or they are dropped and counted. */
  #abandon(key: string, queue: KeyQueue<T>): void {
    if (queue.handler !== undefined) return;
    if (this.#fallback !== undefined) {
      this.#drive(queue);
      return;
    }
    this.#keys.delete(key);
    for (const item of queue.items.splice(0)) {
      this.#unrouted++;
      this.#release(item.msg);
    }
    this.#roomMade();
  }

  /** Calls `handler` for each message of `key`, one at a time and in order (a returned promise is awaited). */
  on(key: string, handler: KeyHandler<T>): this {
    const queue = this.#claim(key);
    if (queue.iterating || queue.handler !== undefined) {
      throw new FerryError("KeyTaken", `stream '${key}' already has a consumer in this process`);
    }
    queue.handler = handler;
    this.#drive(queue);
    this.#read();
    return this;
  }

  /** Calls `handler` for messages of keys with no `stream` or `on` consumer (in order per key). */
  otherwise(handler: KeyHandler<T>): this {
    this.#fallback = handler;
    for (const queue of this.#keys.values()) this.#drive(queue);
    this.#read();
    return this;
  }

  #claim(key: string): KeyQueue<T> {
    let queue = this.#keys.get(key);
    if (queue === undefined) this.#keys.set(key, queue = new KeyQueue<T>());
    return queue;
  }

  #release(msg: Message<Uint8Array>): void {
    if (!this.#closed) msg.release();
  }

  #roomMade(): void {
    const room = this.#room;
    this.#room = null;
    room?.();
  }

  /** Runs a key's handler (its own, or the default) over its queue, one message at a time. */
  async #drive(queue: KeyQueue<T>): Promise<void> {
    if (queue.running || queue.iterating) return;
    queue.running = true;
    try {
      for (;;) {
        const handler = queue.handler ?? this.#fallback;
        if (handler === undefined || queue.iterating) return;
        const item = queue.items.shift();
        if (item === undefined) return;
        this.#roomMade();
        try {
          const result = handler(item.keyed);
          if (result instanceof Promise) await result;
        } finally {
          this.#release(item.msg);
        }
      }
    } finally {
      queue.running = false;
    }
  }

  #read(): void {
    this.#reading ??= this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    const channel = this.channel;
    while (!this.#closed) {
      let batch: Message<Uint8Array>[];
      try {
        batch = channel.tryRecvMany(64);
        if (batch.length === 0) batch = await channel.recvMany(64, { timeout: Infinity });
      } catch (error) {
        if (error instanceof ChannelClosedError) return;
        throw error;
      }
      for (const msg of batch) {
        let frame: Frame<T>;
        try {
          frame = readFrame<T>(msg.bytes);
        } catch {
          this.#unrouted++;
          msg.release();
          continue;
        }
        const key = frame.key ?? "";
        let queue = this.#keys.get(key);
        if (queue === undefined) {
          if (this.#fallback === undefined) {
            this.#unrouted++;
            msg.release();
            continue;
          }
          queue = this.#claim(key);
        }
        // A full key holds everyone back: its order forbids taking the next message past it.
        while (queue.items.length >= this.buffer && !this.#closed) {
          await new Promise<void>((resolve) => this.#room = resolve);
        }
        if (this.#closed) return;
        queue.items.push({
          msg,
          keyed: {
            key,
            get data() {
              return frame.data;
            },
            headers: frame.headers,
            sender: msg.sender,
            redelivered: msg.redelivered,
          },
        });
        queue.notify();
        this.#drive(queue);
      }
    }
  }

  /**
   * Stops receiving and closes the channel handle. Messages taken but not yet consumed are
   * delivered again to the channel's next receiver (marked redelivered); `stream` loops end.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.channel.close();
    this.#roomMade();
    for (const queue of this.#keys.values()) queue.notify();
  }

  /** As `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
