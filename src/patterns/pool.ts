// Worker pools and end of input. A work queue is a channel of frames: jobs are Data frames, and an
// End frame tells the one receiver that takes it that no more input comes, so its loop finishes. One
// message reaches one receiver, so ending input for N receivers takes N End frames, sent after the
// jobs (each sender's messages arrive in order); a pool knows its workers and sends exactly that.
// An engine-level "ended" flag on the channel would let every receiver learn it from one call,
// including receivers nobody counted; this layer needs no engine change.

import { Channel } from "../channel/channel.ts";
import type { OpenOptions, SendOptions } from "../channel/options.ts";
import { FerryError, InvalidOptionError } from "../errors.ts";
import type { Message } from "../message.ts";
import { type Frame, FrameKind, FrameWriter, readFrame } from "./headers.ts";

/** Options of `workQueue`: the channel's (codec and autoRelease are the pattern's own). */
export type WorkQueueOptions = Omit<OpenOptions<Uint8Array>, "codec" | "autoRelease" | "zeroCopy">;

/** One job, as a worker's loop gets it. */
export interface Job<T = unknown> {
  /** The value sent. */
  data: T;
  /** The sender's own headers. */
  headers: Record<string, string>;
  /** True when a worker died holding it and it was delivered again. */
  redelivered: boolean;
}

/** Opens (creating if absent) the work queue `name`. */
export function workQueue<T = unknown>(name: string, options: WorkQueueOptions = {}): WorkQueue<T> {
  return new WorkQueue<T>(token, name, options);
}

const token = Symbol("ferry.pool");

/**
 * A channel of jobs with an end. Send with `send`; receive with `for await (const job of queue)`,
 * which finishes when this receiver takes an End frame (`end(n)` sends n of them). A job is released
 * after the loop body, so in ack mode `send` resolves when a worker finished it, and a worker that
 * dies mid-job leaves it to be delivered again (async) or reported to its sender (ack: PeerDiedError).
 */
export class WorkQueue<T = unknown> implements AsyncIterable<Job<T>>, Disposable {
  /** The channel. */
  readonly channel: Channel<Uint8Array>;
  #writer = new FrameWriter();

  /** @internal Use `workQueue()`. */
  constructor(key: symbol, name: string, options: WorkQueueOptions) {
    if (key !== token) throw new TypeError("use workQueue()");
    this.channel = Channel.open<Uint8Array>(name, { ...options, codec: "raw", autoRelease: false });
  }

  /** Sends one job (in the channel's mode, waiting for room like `Channel.send`). */
  send(value: T, options: SendOptions & { headers?: Record<string, string> } = {}): Promise<void> {
    return this.channel.send(this.#writer.encode({ headers: options.headers }, value), options);
  }

  /**
   * Tells `receivers` receivers that input has ended: each finishes its loop after the jobs this
   * process sent before. Jobs other processes send afterwards stay queued for later receivers.
   */
  async end(receivers: number, options: { timeout?: number } = {}): Promise<void> {
    for (let i = 0; i < receivers; i++) {
      await this.channel.send(this.#writer.encode({ kind: FrameKind.End }), { ...options, mode: "async" });
    }
  }

  /** Jobs as they come, until an End frame reaches this receiver; each is released after the body. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Job<T>, void, undefined> {
    for await (const msg of this.channel) {
      let frame: Frame<T>;
      try {
        frame = readFrame<T>(msg.bytes);
      } catch {
        msg.release(); // not a job: nothing to do with it
        continue;
      }
      if (frame.kind === FrameKind.End) {
        msg.release();
        return;
      }
      try {
        yield { data: frame.data, headers: frame.headers, redelivered: msg.redelivered };
      } finally {
        (msg as Message<Uint8Array>).release();
      }
    }
  }

  /** Leaves the channel (a job held unreleased is delivered again to another worker). */
  close(): void {
    this.channel.close();
  }

  /** As `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Options of `startPool`. */
export interface PoolOptions {
  /** The work queue's channel name. */
  queue: string;
  /** Namespace. Default "ferry". */
  prefix?: string;
  /** Worker processes to keep running. */
  workers: number;
  /** Arguments of `deno` for one worker, e.g. `["run", "--allow-ffi", "worker.ts"]`. */
  command: string[];
  /** Extra environment for the workers (they also get FERRY_POOL_QUEUE and FERRY_POOL_PREFIX). */
  env?: Record<string, string>;
}

/** How one worker process ended. */
export interface WorkerExit {
  /** Its pid. */
  pid: number;
  /** Its exit code. */
  code: number;
  /** The signal that killed it, if one did. */
  signal: Deno.Signal | null;
}

/**
 * Runs `workers` processes that receive from the work queue `queue`, restarting any that exits
 * before `shutdown()`. `shutdown()` drains: it ends input for every live worker, restarts a worker
 * that crashes during the drain (its held job is delivered again to the others or to its
 * replacement) and resolves once every worker has exited.
 */
export function startPool(options: PoolOptions): Pool {
  return new Pool(token, options);
}

/** A pool of worker processes on one work queue. */
export class Pool implements AsyncDisposable {
  /** The options it was started with. */
  readonly options: Readonly<PoolOptions>;
  /** Workers that exited unexpectedly and were replaced. */
  restarts = 0;
  /** Every worker that exited, in order. */
  readonly exits: WorkerExit[] = [];
  #queue: WorkQueue;
  #live = new Map<number, Deno.ChildProcess>();
  #draining = false;
  #drained: Promise<void> | null = null;
  #allExited: (() => void) | null = null;
  #exitWaiters: { count: number; resolve: () => void }[] = [];

  /** @internal Use `startPool()`. */
  constructor(key: symbol, options: PoolOptions) {
    if (key !== token) throw new TypeError("use startPool()");
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new InvalidOptionError(`workers must be an integer >= 1, not ${options.workers}`);
    }
    this.options = options;
    this.#queue = workQueue(options.queue, { prefix: options.prefix, mode: "async" });
    for (let i = 0; i < options.workers; i++) this.#start();
  }

  /** The pids of the workers running now. */
  get pids(): number[] {
    return [...this.#live.keys()];
  }

  #start(): void {
    const child = new Deno.Command(Deno.execPath(), {
      args: this.options.command,
      env: {
        ...this.options.env,
        FERRY_POOL_QUEUE: this.options.queue,
        FERRY_POOL_PREFIX: this.options.prefix ?? "ferry",
      },
      stdin: "null",
    }).spawn();
    this.#live.set(child.pid, child);
    child.status.then((status) => this.#exited(child.pid, status));
  }

  /** Resolves once `count` workers have exited in all (restarted ones included). */
  exited(count: number): Promise<void> {
    if (this.exits.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#exitWaiters.push({ count, resolve }));
  }

  #exited(pid: number, status: Deno.CommandStatus): void {
    this.#live.delete(pid);
    this.exits.push({ pid, code: status.code, signal: status.signal });
    for (const waiter of [...this.#exitWaiters]) {
      if (this.exits.length >= waiter.count) {
        this.#exitWaiters.splice(this.#exitWaiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
    const crashed = !status.success;
    if (!this.#draining || crashed) {
      // Before shutdown any exit is unexpected; during the drain only a crash is (a clean exit is a
      // worker that took its End). A crashed worker's replacement needs an End of its own.
      this.restarts++;
      this.#start();
      if (this.#draining) this.#queue.end(1).catch(() => {});
    }
    if (this.#draining && this.#live.size === 0) this.#allExited?.();
  }

  /** Sends one job to the queue (async mode: resolves once it is queued). */
  send(value: unknown, options?: SendOptions & { headers?: Record<string, string> }): Promise<void> {
    if (this.#draining) {
      throw new FerryError("PoolDraining", "the pool is shutting down; it takes no more jobs");
    }
    return this.#queue.send(value, options);
  }

  /** Ends input for every worker, lets them finish the queue, and resolves once all have exited. */
  shutdown(): Promise<void> {
    this.#drained ??= this.#drain();
    return this.#drained;
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    const exited = new Promise<void>((resolve) => this.#allExited = resolve);
    await this.#queue.end(this.#live.size, { timeout: Infinity });
    if (this.#live.size > 0) await exited;
    this.#queue.close();
  }

  /** As `shutdown()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
