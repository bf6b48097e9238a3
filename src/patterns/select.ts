// Receiving from several channels at once, with the public channel API: try each channel without
// waiting (starting after the one that answered last, so none is starved), and when all are empty
// wait on every one of them. A wait that wins the race hands its message over; a message another
// wait took meanwhile is kept, per channel and process, for the next select over that channel, so
// nothing is lost or delivered twice.
//
// Cost: while a select waits, each of its channels parks one nonblocking FFI wait, which holds one
// thread of Deno's blocking pool (shared with file system calls). The engine issue that brings one
// waiter per process removes that; until then, select over tens of channels, not hundreds.

import type { Channel } from "../channel/channel.ts";
import { ChannelClosedError, TimeoutError } from "../errors.ts";
import type { Message } from "../message.ts";
import { abortReason } from "./abort.ts";

/** What select resolves to: the message and the channel it came from. */
export interface Selected<T = unknown> {
  /** The channel the message came from. */
  channel: Channel<T>;
  /** The message. */
  message: Message<T>;
}

/** Options of `select`. */
export interface SelectOptions {
  /** Milliseconds to wait (Infinity: no limit). Default Infinity. */
  timeout?: number;
  /** Aborting rejects the wait with the signal's reason. */
  signal?: AbortSignal;
}

/** How often a channel's waiter looks up to see whether anyone still wants it. */
const WAIT_SLICE_MS = 250;

/** One channel's state in this process, shared by every select over it. */
interface Watch {
  /** Messages a waiter received that no select took yet. */
  kept: Message<unknown>[];
  /** Selects waiting on this channel now. */
  wanted: number;
  waiting: boolean;
  closed: boolean;
  listeners: Set<() => void>;
}

const watches = new WeakMap<Channel<unknown>, Watch>();

function watchOf(channel: Channel<unknown>): Watch {
  let watch = watches.get(channel);
  if (watch === undefined) {
    watch = { kept: [], wanted: 0, waiting: false, closed: false, listeners: new Set() };
    watches.set(channel, watch);
  }
  return watch;
}

/** Keeps one receive waiting on `channel` while any select wants it. */
async function waitOn(channel: Channel<unknown>, watch: Watch): Promise<void> {
  if (watch.waiting) return;
  watch.waiting = true;
  try {
    while (watch.wanted > 0 && !watch.closed) {
      try {
        watch.kept.push(await channel.recv({ timeout: WAIT_SLICE_MS }));
      } catch (error) {
        if (error instanceof TimeoutError) continue;
        if (error instanceof ChannelClosedError) watch.closed = true;
        else throw error;
      }
      for (const listener of watch.listeners) listener();
    }
  } finally {
    watch.waiting = false;
  }
}

let rotation = 0;

/** A message from any of `channels` now, without waiting (kept ones first), or undefined. */
function tryAny<T>(channels: readonly Channel<T>[]): Selected<T> | undefined {
  const n = channels.length;
  const start = rotation++ % n;
  for (let i = 0; i < n; i++) {
    const channel = channels[(start + i) % n];
    const kept = watches.get(channel as Channel<unknown>)?.kept;
    if (kept !== undefined && kept.length > 0) return { channel, message: kept.shift() as Message<T> };
  }
  for (let i = 0; i < n; i++) {
    const channel = channels[(start + i) % n];
    // A channel with a receive waiting on it is left to that receive: a message taken here could
    // overtake the one it has just claimed and not yet handed over (the channel's order would break).
    if (watches.get(channel as Channel<unknown>)?.waiting) continue;
    let message: Message<T> | undefined;
    try {
      message = channel.tryRecv();
    } catch (error) {
      if (error instanceof ChannelClosedError) continue; // a closed channel just never answers
      throw error;
    }
    if (message !== undefined) return { channel, message };
  }
  return undefined;
}

/**
 * The first message from any of `channels`, and the channel it came from. Channels are tried in
 * turn, starting after the one that answered the previous select, so a busy channel cannot starve
 * the others. Rejects with TimeoutError after `timeout`, the signal's reason on abort, or
 * ChannelClosedError when every channel is closed.
 */
export async function select<T>(
  channels: readonly Channel<T>[],
  options: SelectOptions = {},
): Promise<Selected<T>> {
  if (channels.length === 0) throw new TypeError("select needs at least one channel");
  options.signal?.throwIfAborted();
  const now = tryAny(channels);
  if (now !== undefined) return now;
  const timeout = options.timeout ?? Infinity;
  const all = channels.map((c) => watchOf(c as Channel<unknown>));
  let wake: () => void = () => {};
  const listener = () => wake();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  if (timeout !== Infinity) timer = setTimeout(() => (timedOut = true, wake()), timeout);
  options.signal?.addEventListener("abort", listener);
  for (const watch of all) {
    watch.wanted++;
    watch.listeners.add(listener);
  }
  try {
    for (;;) {
      for (let i = 0; i < channels.length; i++) waitOn(channels[i] as Channel<unknown>, all[i]);
      const got = tryAny(channels);
      if (got !== undefined) return got;
      if (options.signal?.aborted) throw abortReason(options.signal);
      if (timedOut) {
        throw new TimeoutError(
          `nothing arrived on ${channels.map((c) => `'${c.name}'`).join(", ")} within ${timeout} ms`,
        );
      }
      if (all.every((w) => w.closed)) throw new ChannelClosedError("every channel of this select is closed");
      await new Promise<void>((resolve) => wake = resolve);
    }
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", listener);
    for (const watch of all) {
      watch.wanted--;
      watch.listeners.delete(listener);
    }
  }
}

/**
 * Every message of every channel in `channels` as it comes, until all of them are closed (or the
 * signal aborts, ending the loop with its reason). Messages are taken in turn from the channels that
 * have some, so none is starved; each channel's own order is kept.
 */
export async function* merge<T>(
  channels: readonly Channel<T>[],
  options: { signal?: AbortSignal } = {},
): AsyncGenerator<Selected<T>, void, undefined> {
  for (;;) {
    try {
      yield await select(channels, { signal: options.signal });
    } catch (error) {
      if (error instanceof ChannelClosedError) return;
      throw error;
    }
  }
}
