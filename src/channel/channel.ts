// Channel: a named queue in shared memory, the public handle. Each method delegates to the module
// that holds its concern (send.ts, receive.ts, batch.ts, zero_copy.ts, observe.ts), passing the
// handle's ChannelCore (core.ts): a send or receive that can complete now is one sync FFI call.

import type { Message } from "../message.ts";
import * as batch from "./batch.ts";
import { ChannelCore } from "./core.ts";
import { Messages } from "./messages.ts";
import * as observe from "./observe.ts";
import type { ChannelStat, StatOptions } from "./observe.ts";
import type {
  OpenOptions,
  RecvOneOptions,
  RecvOptions,
  SendManyOptions,
  SendMode,
  SendOptions,
} from "./options.ts";
import * as receiving from "./receive.ts";
import * as sending from "./send.ts";
import * as zeroCopy from "./zero_copy.ts";

const token = Symbol("ferry.channel");

/**
 * A handle on a named channel: a queue in shared memory that many processes send to and receive
 * from, each message going to exactly one receiver. Open it with {@linkcode Channel.open}; close
 * it with `close()` or `using`.
 *
 * @example A worker and a producer
 * ```ts
 * import { Channel } from "@ferry/ferry";
 *
 * // worker.ts: each message goes to one worker; with autoRelease it is released after the body.
 * using jobs = Channel.open<{ id: number }>("jobs");
 * for await (const msg of jobs) {
 *   console.log("job", msg.data.id);
 * }
 *
 * // producer.ts: ack mode (the default) resolves once a worker released the message.
 * using out = Channel.open<{ id: number }>("jobs");
 * await out.send({ id: 1 });
 * ```
 */
export class Channel<T = unknown> implements AsyncIterable<Message<T>>, Disposable, AsyncDisposable {
  /** Channel name, without the prefix. */
  readonly name: string;
  /** Namespace: the segment is `/dev/shm/<prefix>.<name>`. */
  readonly prefix: string;
  /** This handle's default send mode. */
  readonly mode: SendMode;
  /** Messages this handle may have written and not yet released. */
  readonly slots: number;
  /** Messages the channel holds at once (the creator's setting). */
  readonly capacity: number;
  /** Largest encoded message in bytes (the creator's setting). */
  readonly maxMessageSize: number;
  /** Most bytes the channel's message pages may take (the creator's `memory`). */
  readonly memory: number;
  /** Default seconds before an unreceived message is dropped (0 or Infinity: never). */
  readonly expiry: number;
  /** Default milliseconds a wait may take. */
  readonly timeout: number;
  /** Whether messages are released when received (or after the `for await` body). */
  readonly autoRelease: boolean;
  /** Whether receives give views over shared memory instead of copies (raw codec). */
  readonly zeroCopy: boolean;

  #c: ChannelCore<T>;

  /**
   * Opens (creating if absent) the channel `name`. Creation settings (capacity, maxMessageSize, memory)
   * come from the creator; asking for other ones than an existing channel has is an error.
   *
   * @example Opening
   * ```ts
   * import { Channel } from "@ferry/ferry";
   *
   * using ch = Channel.open<string>("events", { mode: "async", capacity: 1000, expiry: 30 });
   * ```
   *
   * @param name 1 to 100 letters, digits or `. _ - !`.
   * @param options The handle's defaults, and the settings of a channel this call creates.
   * @returns The open handle; close it when done (each holds one of the channel's 64 seats).
   */
  static open<T = unknown>(name: string, options: OpenOptions<T> = {}): Channel<T> {
    return new Channel<T>(token, name, options);
  }

  /**
   * Removes the channel's segment. Open handles keep working on it; new opens get a new one.
   *
   * @returns Whether there was one to remove.
   */
  static unlink(name: string, options: { prefix?: string } = {}): boolean {
    return observe.unlink(name, options);
  }

  /**
   * Undoes what dead participants of a channel left (held messages redelivered, unfinished
   * writes freed, outcomes nobody will collect dropped), without joining it; every live handle
   * does this on its own within tens of milliseconds.
   *
   * @returns How many it recovered (0 for a channel that is not built: nobody ever took part in it).
   */
  static recover(name: string, options: StatOptions = {}): number {
    return observe.recover(name, options);
  }

  /**
   * Depth, counters and participants of a channel, without joining it. Never waits: a channel
   * another process is building, or whose creator died while building it, has the state
   * "building" or "incomplete" (see ChannelState).
   */
  static stat(name: string, options: StatOptions = {}): ChannelStat {
    return observe.stat(name, options);
  }

  private constructor(key: symbol, name: string, options: OpenOptions<T>) {
    if (key !== token) throw new TypeError("use Channel.open()");
    const c = new ChannelCore<T>(this, name, options);
    this.#c = c;
    this.name = c.name;
    this.prefix = c.prefix;
    this.mode = c.mode;
    this.slots = c.slots;
    this.capacity = c.capacity;
    this.maxMessageSize = c.maxMessageSize;
    this.memory = c.memory;
    this.expiry = c.expiry;
    this.timeout = c.timeout;
    this.autoRelease = c.autoRelease;
    this.zeroCopy = c.zeroCopy;
  }

  // ------------------------------------------------------------------ sending

  /**
   * Sends `value` in the handle's mode (or `options.mode`): ack resolves once a receiver released
   * it, async once it is written. Waits for room up to `timeout`, then rejects with
   * ChannelFullError; in ack mode a receiver's death rejects with PeerDiedError, an expiry with
   * ExpiredError, no release in time with TimeoutError.
   *
   * @example Both modes
   * ```ts
   * import { Channel } from "@ferry/ferry";
   *
   * using ch = Channel.open("jobs");
   * await ch.send({ id: 1 }); // resolves once a receiver released it
   * await ch.send({ id: 2 }, { mode: "async", expiry: 10 }); // once written
   * await ch.send({ id: 2 }, { redelivered: true }); // a retry: receivers see msg.redelivered
   * ```
   */
  send(value: T, options?: SendOptions): Promise<void> {
    return sending.send(this.#c, value, options);
  }

  /** As `send`, blocking the thread (for scripts and workers). */
  sendSync(value: T, options?: SendOptions): void {
    sending.sendSync(this.#c, value, options);
  }

  /**
   * Sends without waiting for room: throws ChannelFullError when the channel or this sender's
   * slots are full. In ack mode the message is written now and the returned promise settles
   * with its acknowledgement.
   */
  trySend(value: T, options?: SendOptions): void | Promise<void> {
    return sending.trySend(this.#c, value, options);
  }

  // ------------------------------------------------------------------ batches

  /**
   * Sends `values` in async mode, as many per core call as fit, and returns how many were sent:
   * all of them, or those before the first that found no room. Every value is encoded and
   * checked before any is written, so bad input sends nothing.
   */
  trySendMany(values: readonly T[], options?: Omit<SendManyOptions, "timeout">): number {
    return batch.trySendMany(this.#c, values, options);
  }

  /** As sendMany, blocking the thread while it waits for room (scripts, workers, benchmarks). */
  sendManySync(values: readonly T[], options?: SendManyOptions): void {
    batch.sendManySync(this.#c, values, options);
  }

  /** As trySendMany, waiting for room (up to `timeout`) until every value is sent. */
  sendMany(values: readonly T[], options?: SendManyOptions): Promise<void> {
    return batch.sendMany(this.#c, values, options);
  }

  /** Up to `max` (1..256) messages queued now (none: an empty array), in as few core calls as fit. */
  tryRecvMany(max = 64): Message<T>[] {
    return batch.tryRecvMany(this.#c, max);
  }

  /** As recvMany, blocking the thread until at least one message came (TimeoutError). */
  recvManySync(max = 64, options?: RecvOptions): Message<T>[] {
    return batch.recvManySync(this.#c, max, options);
  }

  /** At least one message, up to `max` (1..256), waiting up to `timeout` ms (TimeoutError). */
  recvMany(max = 64, options?: RecvOptions): Promise<Message<T>[]> {
    return batch.recvMany(this.#c, max, options);
  }

  // ------------------------------------------------------------------ receiving

  /**
   * The next message, waiting up to `timeout` ms (TimeoutError when nothing came). With
   * autoRelease (the default) it is released already; otherwise call `msg.release()`.
   *
   * @example Receiving with a timeout
   * ```ts
   * import { Channel, TimeoutError } from "@ferry/ferry";
   *
   * using ch = Channel.open<string>("events", { autoRelease: false });
   * try {
   *   const msg = await ch.recv({ timeout: 1000 });
   *   console.log(msg.data);
   *   msg.release(); // the sender's ack-mode send resolves now
   * } catch (e) {
   *   if (!(e instanceof TimeoutError)) throw e;
   * }
   * ```
   */
  recv(options?: RecvOneOptions): Promise<Message<T>> {
    return receiving.recv(this.#c, options);
  }

  /**
   * As `recv`, blocking the thread. On a zeroCopy channel it gives views, held until release.
   *
   * @example Large messages into one reused buffer
   * ```ts
   * import { Channel } from "@ferry/ferry";
   *
   * using ch = Channel.open<Uint8Array>("frames", { codec: "raw" });
   * const frame = new Uint8Array(1024 * 1024);
   * const msg = ch.recvSync({ into: frame }); // msg.bytes is a view of `frame` (when it fits)
   * console.log(msg.bytes.length);
   * ```
   */
  recvSync(options?: RecvOneOptions): Message<T> {
    return receiving.recvSync(this.#c, options);
  }

  /** The next message if one is queued now, else undefined. */
  tryRecv(): Message<T> | undefined {
    return receiving.receive(this.#c, this.#c.autoRelease);
  }

  /**
   * Messages as they come, until the handle is closed; with autoRelease each is released after
   * the loop body (so an ack-mode sender learns the body finished).
   *
   * @example
   * ```ts
   * import { Channel } from "@ferry/ferry";
   *
   * using ch = Channel.open<{ line: string }>("log");
   * for await (const msg of ch) {
   *   console.log(msg.data.line);
   * }
   * ```
   */
  [Symbol.asyncIterator](): AsyncGenerator<Message<T>, void, undefined> {
    return new Messages(this.#c);
  }

  // ------------------------------------------------------------------ zero-copy sending

  /**
   * Lends a slot of `size` bytes in shared memory (raw codec): write the message into the
   * returned view, then `commit` it (or `unloan` it). Counts against `slots` and `capacity` like
   * a send; throws ChannelFullError when there is no room. The view is detached (reads length 0)
   * by commit, unloan or close, whichever comes first.
   */
  loan(size: number): Uint8Array {
    return zeroCopy.loan(this.#c, size);
  }

  /**
   * As `loan`, but when the channel or this sender's `slots` are full it waits for room on this
   * thread, up to `timeout` (the handle's by default), then throws ChannelFullError: the
   * zero-copy counterpart of `sendSync`, for producers that write in place as fast as they can.
   */
  loanSync(size: number, options?: { timeout?: number }): Uint8Array {
    return zeroCopy.loanSync(this.#c, size, options);
  }

  /**
   * Sends a loaned view (its first `length` bytes, default all). The view is detached: the
   * bytes now belong to the receiver. In ack mode the returned promise settles with the ack.
   */
  commit(view: Uint8Array, options?: SendOptions & { length?: number }): void | Promise<void> {
    return zeroCopy.commit(this.#c, view, options);
  }

  /** Gives a loaned slot back without sending it. */
  unloan(view: Uint8Array): void {
    zeroCopy.unloan(this.#c, view);
  }

  // ------------------------------------------------------------------ lifecycle

  /** Depth, counters and participants now. */
  stat(): ChannelStat {
    return observe.readStat(this.#c.live(), this.name, this.prefix);
  }

  /**
   * Leaves the channel. Messages this handle holds unreleased are redelivered to others, marked
   * `redelivered` (ack-mode ones too: their senders go on waiting for the next receiver's
   * release); messages it sent stay queued; loaned slots are given back. Every loan view and
   * zero-copy message view is detached first (each reads length 0 from then on). Pending waits on
   * this handle reject with ChannelClosedError.
   */
  close(): void {
    this.#c.close();
  }

  /** Closes the handle at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the handle at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
