// The realm's one waiting thread: every parked promise wait, on any channel and side, sleeps in a
// set of the core (core/src/waiter.rs) that one nonblocking FFI call at a time waits on with
// futex_waitv. A process parked on 50 channels so holds one blocking-pool thread, not 50, and the
// waits that fire together reach the event loop in one turn. A set takes 127 waits; more open
// further sets, each with its own call.

import { WaitPolicy } from "../../ffi/abi.ts";
import { core } from "../../ffi/lib.ts";

/** One parked wait: a handle's side, registered in a set until it fires or is cancelled. */
export interface Parked {
  readonly token: number;
  /** Settles (never rejects) when the line was woken, the slice ended, or the wait was cancelled. */
  readonly promise: Promise<void>;
}

interface Entry {
  set: WaitSet;
  resolve: () => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface WaitSet {
  readonly ptr: Deno.PointerObject;
  /** Waits of this set not yet handed back. */
  size: number;
  /** Whether a nonblocking `ferry_waitset_wait` is out for this set. */
  pumping: boolean;
}

const sets: WaitSet[] = [];
const entries = new Map<number, Entry>();
let lastToken = 0;
/** Tokens of fired waits, as `ferry_waitset_take` hands them over. */
const fired = new Uint32Array(128);

/**
 * Parks handle `h`'s `side`, whose line `ferry_park_prepare` registered at `epoch` (and whose
 * condition was re-checked since), until woken, until the park slice ends, or until `deadline`
 * (performance.now() ms) when that comes first.
 */
export function park(h: Deno.PointerObject, side: number, epoch: number, deadline: number): Parked {
  const lib = core();
  lastToken = lastToken >= 0xFFFF_FFFE ? 1 : lastToken + 1;
  const token = lastToken;
  let set = sets.find((s) => lib.ferry_waitset_add(s.ptr, h, side, epoch, token) === 1);
  if (set === undefined) {
    const ptr = lib.ferry_waitset_new();
    if (ptr === null) throw new Error("ferry: the core could not make a wait set");
    set = { ptr, size: 0, pumping: false };
    sets.push(set);
    lib.ferry_waitset_add(ptr, h, side, epoch, token);
  }
  set.size++;
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  // The set's sleep is one slice long: a nearer deadline gets a timer of its own.
  const left = deadline - performance.now();
  const timer = left < WaitPolicy.PARK_SLICE_MS
    ? setTimeout(() => unpark(token), Math.max(0, left))
    : undefined;
  entries.set(token, { set, resolve, timer });
  if (!set.pumping) pump(set);
  return { token, promise };
}

/** Cancels a parked wait: takes it out of its set and settles its promise (close() does this). */
export function unpark(token: number): void {
  const e = entries.get(token);
  if (e === undefined) return;
  core().ferry_waitset_remove(e.set.ptr, token);
  settle(token, e);
}

function settle(token: number, e: Entry): void {
  entries.delete(token);
  e.set.size--;
  if (e.timer !== undefined) clearTimeout(e.timer);
  e.resolve();
}

/** Keeps one nonblocking wait out on `set` while anything is parked there. */
async function pump(set: WaitSet): Promise<void> {
  const lib = core();
  set.pumping = true;
  try {
    while (set.size > 0) {
      await lib.ferry_waitset_wait(set.ptr, WaitPolicy.PARK_SLICE_MS);
      for (let n; (n = lib.ferry_waitset_take(set.ptr, fired, fired.length)) > 0;) {
        for (let i = 0; i < n; i++) {
          const e = entries.get(fired[i]);
          if (e !== undefined) settle(fired[i], e);
        }
      }
    }
  } finally {
    set.pumping = false;
  }
}
