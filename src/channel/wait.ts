// How a channel call waits when it cannot complete now: retry the sync call (a peer's round trip,
// without a thread hop), then park in the realm's one waiting thread (waiter.ts), one park per
// handle and side shared by every waiter there, so the event loop is never blocked for long. How
// long it retries is the `spin` option; by default it adapts to how soon answers came lately. The
// policy and its numbers are the core's (core/src/wait.rs, "The policy"; ffi/abi.ts WaitPolicy).

import { WaitPolicy } from "../../ffi/abi.ts";
import type { ChannelCore } from "./core.ts";
import { park } from "./waiter.ts";

/** Counters of this process's promise waits, for probes and tests (not part of the API). */
export const waitStats = { spins: 0, parks: 0, parkedUs: 0 };

/** Attempts between two clock reads of a timed spin (a clock read costs a few attempts). */
const ATTEMPTS_PER_CLOCK = 32;
/** One quick answer after a park in this many tries the longest spin (see `adapt`). */
const EXPLORE_EVERY = 8;

/**
 * Calls `attempt` until it returns a value or `deadline` (performance.now() ms) passes
 * (undefined). `spin` is the ABI word of the call's `spin` option (the handle's by default).
 * Throws what `attempt` throws: ChannelClosedError once the handle is closed.
 */
export async function until<T, R>(
  c: ChannelCore<T>,
  side: number,
  deadline: number,
  attempt: () => R | undefined,
  spin: number = c.spin,
): Promise<R | undefined> {
  const start = performance.now();
  let spinMs: number;
  if (spin === WaitPolicy.SPIN_POLITE) {
    for (let i = 0; i < WaitPolicy.SPIN_ATTEMPTS; i++) {
      const r = attempt();
      if (r !== undefined) return caught(c, side, start, r);
    }
    spinMs = c.spinUs[side] / 1000;
  } else if (spin === WaitPolicy.SPIN_BUSY) {
    // At most one slice: spinning blocks the event loop, so past it the wait parks (wait.rs).
    spinMs = WaitPolicy.PARK_SLICE_MS;
  } else {
    spinMs = spin / 1000;
  }
  if (spinMs > 0) {
    const spinEnd = Math.min(start + spinMs, deadline);
    do {
      for (let i = 0; i < ATTEMPTS_PER_CLOCK; i++) {
        const r = attempt();
        if (r !== undefined) return spin === WaitPolicy.SPIN_POLITE ? caught(c, side, start, r) : r;
      }
    } while (performance.now() < spinEnd);
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
    const r = attempt(); // throws ChannelClosedError once the handle is closed
    if (r !== undefined) {
      if (spin === WaitPolicy.SPIN_POLITE) adapt(c, side, start);
      return r;
    }
  }
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
