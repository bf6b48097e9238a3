// How a channel call waits when it cannot complete now: retry the sync call a few hundred times
// (a peer's round trip, without a thread hop), then park in one nonblocking futex wait per handle
// and side, shared by every waiter there, so the event loop is never blocked. The policy's numbers
// are the core's own (ffi/abi.ts WaitPolicy).

import { WaitPolicy } from "../../ffi/abi.ts";
import type { ChannelCore } from "./core.ts";

/** Counters of this process's promise waits, for probes and tests (not part of the API). */
export const waitStats = { spins: 0, parks: 0 };

/**
 * Calls `attempt` until it returns a value or `deadline` (performance.now() ms) passes
 * (undefined). Throws what `attempt` throws: ChannelClosedError once the handle is closed.
 */
export async function until<T, R>(
  c: ChannelCore<T>,
  side: number,
  deadline: number,
  attempt: () => R | undefined,
): Promise<R | undefined> {
  for (let i = 0; i < WaitPolicy.SPIN_ATTEMPTS; i++) {
    const r = attempt();
    if (r !== undefined) {
      waitStats.spins++;
      return r;
    }
  }
  const lib = c.lib;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) return undefined;
    const parked = c.parked[side];
    if (parked !== null) {
      await parked;
    } else {
      const h = c.live();
      const epoch = lib.ferry_park_prepare(h, side);
      const r = attempt();
      if (r !== undefined) {
        lib.ferry_park_cancel(h, side);
        return r;
      }
      // The wait runs on another thread: it gets the handle's Sync part, never the handle.
      c.waiter ??= lib.ferry_waiter(h);
      const slice = Math.min(Math.ceil(left), WaitPolicy.PARK_SLICE_MS);
      const wait = lib.ferry_park_wait(c.waiter, side, epoch, slice);
      c.parked[side] = wait;
      waitStats.parks++;
      try {
        await wait;
      } finally {
        c.parked[side] = null;
        c.freeWhenIdle();
      }
    }
    const r = attempt(); // throws ChannelClosedError once the handle is closed
    if (r !== undefined) return r;
  }
}
