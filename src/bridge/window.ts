// The bounded in-flight window of a route: at most `size` messages taken and not finished, so a
// bridge never buffers more than that whatever NATS's pace. Past it, the route stops taking
// messages and the backpressure lands where it belongs (a full local channel, or JetStream keeping
// its messages).

import { type Channel, ChannelClosedError, type Message, TimeoutError } from "../../mod.ts";

/** How long one receive of a route waits before it checks whether the route should stop. */
export const RECV_SLICE_MS = 200;
/** How long a route rests after a receive failed for another reason than a timeout. */
const RECV_RETRY_MS = 1000;

/** @internal */
export class Window {
  #free: number;
  #waiters: (() => void)[] = [];
  #idle: (() => void)[] = [];
  readonly size: number;

  constructor(size: number) {
    this.size = size;
    this.#free = size;
  }

  /** Messages taken and not finished. */
  get used(): number {
    return this.size - this.#free;
  }

  /** Resolves once a place is free, and takes it. */
  acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Takes a place if one is free now; false otherwise. */
  tryAcquire(): boolean {
    if (this.#free === 0) return false;
    this.#free--;
    return true;
  }

  /** Frees a place: hands it straight to the oldest waiter, if any. */
  release(): void {
    const next = this.#waiters.shift();
    if (next !== undefined) return next();
    this.#free++;
    if (this.#free === this.size) { for (const done of this.#idle.splice(0)) done(); }
  }

  /** Wakes every `acquire` waiter without a place (a closing route: they check and leave). */
  wakeAll(): void {
    for (const wake of this.#waiters.splice(0)) {
      this.#free--; // balanced by the waiter's release, as if it had taken a place
      wake();
    }
  }

  /** Resolves when nothing is in flight. */
  idle(): Promise<void> {
    if (this.#free === this.size) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}

/** @internal Pause between attempts when nobody answers (ack) or a publish failed (async); doubles up to the max. */
export const RETRY_MIN_MS = 50;
/** @internal */
export const RETRY_MAX_MS = 1000;

/** @internal The pauses between one message's (or call's) attempts: RETRY_MIN_MS, doubling up to RETRY_MAX_MS. */
export class Backoff {
  #ms = RETRY_MIN_MS;

  /** The next pause in ms, at most `left` (the time the attempts still have). */
  next(left = Infinity): number {
    const ms = Math.min(this.#ms, Math.max(0, left));
    this.#ms = Math.min(RETRY_MAX_MS, this.#ms * 2);
    return ms;
  }
}

/** @internal Resolves after `ms`, or at once when `signal` aborts (a route that is closing). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/** @internal Waits for `promise` for at most `ms` (close() bounds its wait for work in flight). */
export async function atMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([promise, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * @internal The next message of a route's channel, taken once its window has a free place (the
 * place is then the caller's to release); undefined when the route stops or the channel closed.
 * Other receive failures go to `report` and are retried after a pause.
 */
export async function takeInWindow(
  window: Window,
  channel: Channel<Uint8Array>,
  signal: AbortSignal,
  report: (e: unknown) => void,
): Promise<Message<Uint8Array> | undefined> {
  while (!signal.aborted) {
    await window.acquire();
    if (signal.aborted) {
      window.release();
      break;
    }
    try {
      return await channel.recv({ timeout: RECV_SLICE_MS });
    } catch (e) {
      window.release();
      if (e instanceof TimeoutError) continue;
      if (e instanceof ChannelClosedError) return undefined;
      report(e);
      await pause(RECV_RETRY_MS, signal);
    }
  }
  return undefined;
}

/**
 * @internal Drains a NATS subscription (no new messages; those received are handled first) for at
 * most `ms`: a drain waits for the server, which a lost connection never answers, so a route that
 * closes then only unsubscribes.
 */
export async function drainWithin(sub: { drain(): Promise<void>; unsubscribe(): void }, ms: number) {
  let drained = false;
  await atMost(sub.drain().then(() => drained = true, () => {}), ms);
  if (!drained) {
    try {
      sub.unsubscribe();
    } catch {
      // closed with the connection already
    }
  }
}
