// How a channel call waits when it cannot complete now: retry the sync call (a peer's round trip,
// without a thread hop), then park in the realm's one waiting thread (waiter.ts), one park per
// handle and side shared by every waiter there, so the event loop is never blocked for long. How
// long it retries is the `spin` option; by default it adapts to how soon answers came lately, and
// outlasts the wake-up of a peer that was just woken. Past its first few microseconds a spin gives
// the event loop a turn every slice. The policy and its numbers are the core's (core/src/wait.rs,
// "The policy"; ffi/abi.ts WaitPolicy).

import { WaitPolicy } from "../../ffi/abi.ts";
import type { ChannelCore } from "./core.ts";
import { SIDE_RECV, SIDE_SEND } from "../../ffi/status.ts";
import { setImmediate } from "node:timers";
import { park } from "./waiter.ts";
import { core } from "../../ffi/lib.ts";

/** Counters of this process's promise waits, for probes and tests (not part of the API). */
export const waitStats = { spins: 0, woken: 0, wokenMissed: 0, parks: 0, parkedUs: 0 };

/** Attempts between two clock reads of a timed spin (a clock read costs a few attempts). */
const ATTEMPTS_PER_CLOCK = 32;
/** One quick answer after a park in this many tries the longest spin (see `adapt`). */
const EXPLORE_EVERY = 8;

/**
 * Calls `attempt` until it returns a value or `deadline` (performance.now() ms) passes
 * (undefined). `spin` is the ABI word of the call's `spin` option (the handle's by default);
 * `tried`: attempts the caller already made in a row without waiting (see `retryNow`), which the
 * polite spin's first phase counts as its own (other spins ignore it).
 * Throws what `attempt` throws: ChannelClosedError once the handle is closed.
 */
export async function until<T, R>(
  c: ChannelCore<T>,
  side: number,
  deadline: number,
  attempt: () => R | undefined,
  spin: number = c.spin,
  tried = 0,
): Promise<R | undefined> {
  const start = performance.now();
  if (spin === WaitPolicy.SPIN_POLITE) {
    for (let i = tried; i < WaitPolicy.SPIN_ATTEMPTS; i++) {
      const r = attempt();
      if (r !== undefined) return caught(c, side, start, r);
    }
    const woken = peerWoken(c, side);
    const spinUs = woken ? WaitPolicy.WOKEN_SPIN_US : c.spinUs[side];
    const spinEnd = Math.min(start + spinUs / 1000, deadline);
    const r = spinUs > 0 ? await spinYielding(spinEnd, attempt) : undefined;
    // A spin the call's own deadline cut short says nothing about the peer.
    if (woken && (r !== undefined || spinEnd < deadline)) wokenSpun(c, side, r !== undefined);
    if (r !== undefined) return woken ? r : caught(c, side, start, r);
  } else {
    // At most one slice: spinning blocks the event loop, so past it the wait parks (wait.rs).
    const spinMs = spin === WaitPolicy.SPIN_BUSY ? WaitPolicy.PARK_SLICE_MS : spin / 1000;
    const spinEnd = Math.min(start + spinMs, deadline);
    if (spinMs > 0) {
      do {
        for (let i = 0; i < ATTEMPTS_PER_CLOCK; i++) {
          const r = attempt();
          if (r !== undefined) return r;
        }
      } while (performance.now() < spinEnd);
    }
  }
  const lib = c.lib;
  for (;;) {
    const now = performance.now();
    if (deadline - now <= 0) return undefined;
    const parked = c.parked[side];
    if (parked !== null) {
      await parked.promise;
    } else {
      const h = c.live();
      const epoch = lib.ferry_park_prepare(h, side);
      const r = attempt();
      if (r !== undefined) {
        lib.ferry_park_cancel(h, side);
        return r;
      }
      const p = park(h, side, epoch, deadline);
      c.parked[side] = p;
      waitStats.parks++;
      try {
        await p.promise;
      } finally {
        c.parked[side] = null;
        waitStats.parkedUs += (performance.now() - now) * 1000;
      }
    }
    // Whether the park was cut short by a release that woke a peer (core.ts releaseHeld): taken
    // by whichever waiter comes back first, and never left set for a later, unrelated wait.
    const respin = c.respin[side];
    c.respin[side] = false;
    const r = attempt(); // throws ChannelClosedError once the handle is closed
    if (r !== undefined) {
      if (spin === WaitPolicy.SPIN_POLITE) adapt(c, side, start);
      return r;
    }
    if (respin && spin === WaitPolicy.SPIN_POLITE && peerWoken(c, side)) {
      // Spin through the woken peer's wake-up, under the same rule as a wait that begins after one.
      const spinEnd = Math.min(performance.now() + WaitPolicy.WOKEN_SPIN_US / 1000, deadline);
      const got = await spinYielding(spinEnd, attempt);
      if (got !== undefined || spinEnd < deadline) wokenSpun(c, side, got !== undefined);
      if (got !== undefined) return got;
    }
  }
}

/**
 * Whether the peer side (senders for a receive, receivers for a send) had a sleeper woken since
 * this handle's last wait on `side` began: that peer is on its way back through two thread hops,
 * and a spin that outlasts them keeps both sides out of the park-and-wake cycle. A spin that
 * missed makes the next few woken peers go unheeded (1, 3, 7 ... up to 63 of them), so a peer
 * that is woken but then slow costs at most a spin in every 64 wakes.
 */
function peerWoken<T>(c: ChannelCore<T>, side: number): boolean {
  const epoch = c.lib.ferry_wake_epoch(c.live(), side === SIDE_RECV ? SIDE_SEND : SIDE_RECV);
  if (epoch === c.peerEpoch[side]) return false;
  c.peerEpoch[side] = epoch;
  if (c.wokenSkips[side] === 0) return true;
  c.wokenSkips[side]--;
  return false;
}

/** Counts a spin after a woken peer: one that missed sets how many woken peers go unheeded next. */
function wokenSpun<T>(c: ChannelCore<T>, side: number, answered: boolean): void {
  if (answered) {
    waitStats.woken++;
    c.wokenMisses[side] = 0;
  } else {
    waitStats.wokenMissed++;
    const misses = ++c.wokenMisses[side];
    c.wokenSkips[side] = 2 ** Math.min(misses, 6) - 1;
  }
}

/**
 * Calls `attempt` until it returns a value or `end` passes, in slices of at most SPIN_SLICE_US
 * with a turn of the event loop between them, so timers and I/O keep running, and a sched_yield,
 * so that on a busy machine the peer it waits for is not kept off the core by it (measured here at
 * load 9-16 on 2 cores: promise throughput median 0.81 M msg/s over 16 rounds with it, 0.16
 * without; round trip p50 16 us with it, 30-46 without).
 */
async function spinYielding<R>(end: number, attempt: () => R | undefined): Promise<R | undefined> {
  const lib = core();
  for (let now = performance.now(); now < end; now = performance.now()) {
    lib.ferry_yield_cpu(); // about 0.3 us when nothing else wants the core
    await nextTurn();
    const sliceEnd = Math.min(performance.now() + WaitPolicy.SPIN_SLICE_US / 1000, end);
    do {
      for (let i = 0; i < ATTEMPTS_PER_CLOCK; i++) {
        const r = attempt();
        if (r !== undefined) return r;
      }
    } while (performance.now() < sliceEnd);
  }
  return undefined;
}

/** Settles after the event loop's next turn, in which timers and I/O run: about 1-3 us. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A polite wait answered while spinning: keep spinning about twice as long as answers take. */
function caught<T, R>(c: ChannelCore<T>, side: number, start: number, r: R): R {
  waitStats.spins++;
  const waitedUs = (performance.now() - start) * 1000;
  const budget = c.spinUs[side];
  c.spinUs[side] = Math.min(WaitPolicy.ADAPTIVE_MAX_US, Math.max(2 * waitedUs, budget - budget / 16));
  return r;
}

/**
 * A polite wait answered after it parked: its spin did not pay, so the next one is halved (on an
 * oversubscribed machine spinning only delays the peer it waits for). One quick answer in
 * EXPLORE_EVERY tries the longest spin: when both sides park, each wake costs two thread hops, and
 * only a spin that outlasts them makes both sides stop parking. Slow answers: idle, spin the least.
 */
function adapt<T>(c: ChannelCore<T>, side: number, start: number): void {
  const waitedUs = (performance.now() - start) * 1000;
  if (waitedUs > 2 * WaitPolicy.ADAPTIVE_MAX_US) {
    c.spinUs[side] = 0;
  } else if (++c.spinTries[side] % EXPLORE_EVERY === 0) {
    c.spinUs[side] = WaitPolicy.ADAPTIVE_MAX_US;
  } else {
    c.spinUs[side] /= 2;
  }
}

/** Attempts `retryNow` makes: half the polite spin's first phase, whose rest `until` then makes. */
export const RETRY_NOW_ATTEMPTS = WaitPolicy.SPIN_ATTEMPTS / 2;

/**
 * With the polite spin, retries `attempt` RETRY_NOW_ATTEMPTS times in a row, in the caller's turn,
 * before a promise wait is set up: a peer that answers within a few microseconds then costs no
 * async machinery (about half a microsecond of promises, closures and clock reads per wait). Pass
 * RETRY_NOW_ATTEMPTS as `until`'s `tried` afterwards. Undefined if none answered.
 */
export function retryNow<R>(spin: number, attempt: () => R | undefined): R | undefined {
  if (spin !== WaitPolicy.SPIN_POLITE) return undefined;
  for (let i = 0; i < RETRY_NOW_ATTEMPTS; i++) {
    const r = attempt();
    if (r !== undefined) return r;
  }
  return undefined;
}

/** Runs a blocking core call `call` with the handle's sync waits spinning as `spin` says. */
export function spinning<T, R>(c: ChannelCore<T>, spin: number, call: () => R): R {
  if (spin === c.spin) return call();
  c.lib.ferry_set_spin(c.live(), spin);
  try {
    return call();
  } finally {
    if (!c.closed) c.lib.ferry_set_spin(c.handle, c.spin);
  }
}
