// What a channel may be opened and called with: the option types, their defaults, and the one
// check of each (names, prefixes, modes, integers, milliseconds, expiry). Namespace and the admin
// calls validate with the same functions, so a rule changes here and nowhere else.

import { Layout, WaitPolicy } from "../../ffi/abi.ts";
import { NO_TIMEOUT, SEND_REPEAT } from "../../ffi/status.ts";
import type { CapacityPatterns } from "../capacity.ts";
import type { CodecOption } from "../codec.ts";
import { InvalidNameError, InvalidOptionError } from "../errors.ts";
import type { TrustOptions } from "../open.ts";

/**
 * When a send succeeds: `"ack"` once a receiver has released the message (no message is lost
 * without an error reaching the sender), `"async"` once it is written into shared memory.
 */
export type SendMode = "ack" | "async";

/**
 * How long a wait spins (retries without sleeping) before it parks, trading CPU for latency:
 * `"polite"` (default) spins about 5 us, longer (up to 50 us) while answers keep coming that soon,
 * and parks at once when idle; a promise wait also spins up to 200 us while the side it waits for
 * is waking up (it was asleep, and was just woken), past 5 us in slices that let timers and I/O
 * run in between; a number spins that many microseconds (0..1000000) every time;
 * `"busy"` spins until the wait's deadline (the promise API: for at most 20 ms, then it parks, so
 * that timers and I/O still run). A spinning wait holds a whole core: choose `"busy"` or a number
 * only on cores you dedicate to the channel.
 */
export type Spin = "polite" | "busy" | number;

/** Options of {@linkcode Channel.open}: the handle's defaults, and the settings of a channel it creates. */
export interface OpenOptions<T = unknown> extends TrustOptions {
  /** Namespace: channels with the same prefix see each other. Default "ferry". */
  prefix?: string;
  /** "ack" (default): send resolves once a receiver released the message. "async": once written. */
  mode?: SendMode;
  /** Messages this handle may have written and not yet released (1..32). Default 1 ack, 16 async. */
  slots?: number;
  /** Messages the channel holds at once, queued or received and not yet released. Fixed at creation. */
  capacity?: number;
  /**
   * Capacity by channel name, tried before `capacity`: globs (`"ws.*"`) or RegExps, first match in
   * insertion order wins. Like `capacity`, it only matters to the process that creates the channel.
   */
  channelCapacity?: CapacityPatterns;
  /** Largest encoded message in bytes. Fixed at creation. Default 1 MiB. */
  maxMessageSize?: number;
  /**
   * Most bytes of /dev/shm the channel may take for messages larger than 96 bytes (smaller ones
   * live in the slot's own line and cost nothing more). Each such message needs its size rounded
   * up to 4 KiB pages, kept by its slot for later messages. Memory is taken as messages need it:
   * a channel that is idle, or carries small messages, costs about 40 KiB whatever this says.
   * A send that would pass the bound waits for room like a full channel (ChannelFullError when
   * it gives up). Fixed at creation. Default: capacity x maxMessageSize (rounded to pages), so the
   * bound never refuses what capacity allows; at least maxMessageSize rounded up to 4 KiB.
   */
  memory?: number;
  /** Seconds after which an unreceived message is dropped (0 or Infinity: never). Default 60. */
  expiry?: number;
  /**
   * Milliseconds any wait may take (Infinity: no limit). Default 5000. Opening waits too, for a
   * channel another process is still building: TimeoutError when it is not ready in time.
   */
  timeout?: number;
  /**
   * How values become bytes: "msgpack" (default; object shapes shared through the namespace),
   * "msgpack-plain" (each message standalone msgpack), "raw" (Uint8Array payloads) or your own codec.
   */
  codec?: CodecOption<T>;
  /** Release each message when it is received (or after the `for await` body). Default true. */
  autoRelease?: boolean;
  /**
   * Raw codec only: receive without copying. `msg.view` reads the payload in shared memory until
   * the message is released or the channel closed (then it is detached: it reads length 0 and
   * `msg.view` throws). Messages from recv/tryRecv/recvSync/recvMany stay held until
   * `msg.release()`; `for await` releases after the body.
   */
  zeroCopy?: boolean;
  /** false: open only an existing channel (ChannelNotFoundError when absent). Default true. */
  create?: boolean;
  /** How this handle's waits spin before they sleep (see {@linkcode Spin}). Default "polite". */
  spin?: Spin;
}

/** Per-call options of the send calls, over the handle's defaults. */
export interface SendOptions {
  /** The handle's mode by default. */
  mode?: SendMode;
  /** Milliseconds to wait for room and, in ack mode, for the release. The handle's timeout by default. */
  timeout?: number;
  /** Seconds before an unreceived message is dropped. The handle's expiry by default. */
  expiry?: number;
  /** How this call's waits spin before they sleep (see {@linkcode Spin}). The handle's by default. */
  spin?: Spin;
  /**
   * This message may repeat one sent before (a relay, or a retry after an unknown outcome):
   * receivers see `msg.redelivered` true. Default false.
   */
  redelivered?: boolean;
}

/** Per-call options of the batch sends (`sendMany`, `sendManySync`, `trySendMany`), async mode. */
export interface SendManyOptions {
  /** Seconds before an unreceived message is dropped. The handle's expiry by default. */
  expiry?: number;
  /** Milliseconds to wait for room (`trySendMany` never waits). The handle's timeout by default. */
  timeout?: number;
  /**
   * These messages may repeat ones sent before (a relay, or a retry after an unknown outcome):
   * receivers see `msg.redelivered` true on each. Default false.
   */
  redelivered?: boolean;
}

/** Per-call options of the receive calls. */
export interface RecvOptions {
  /** Milliseconds to wait for a message. The handle's timeout by default. */
  timeout?: number;
  /** How this call's wait spins before it sleeps (see {@linkcode Spin}). The handle's by default. */
  spin?: Spin;
}

/** Per-call options of the single-message receives (`recv`, `recvSync`). */
export interface RecvOneOptions extends RecvOptions {
  /**
   * Copy the payload into this buffer, from its start, instead of into memory the message owns:
   * `msg.bytes` (and a raw channel's `msg.data`) are then views of `into`, valid until you reuse
   * it. For large messages received in a loop this saves an allocation per message (a fresh
   * 1 MiB buffer costs several times the copy into a reused one). A payload longer than `into`
   * gets a buffer of its own, as without the option. Not for zeroCopy handles.
   */
  into?: Uint8Array;
}

/** Channel and group names. */
export const NAME_PATTERN = /^[A-Za-z0-9._!-]{1,100}$/;
/**
 * Prefixes: the name rule without ".", so that `<prefix>.<name>` splits at its first dot and no two
 * (prefix, name) pairs share a segment (prefix "a" with channel "b.c" is not prefix "a.b" with "c").
 */
const PREFIX_PATTERN = /^[A-Za-z0-9_!-]{1,100}$/;
/** The defaults of every option that has one (Namespace reads prefix and timeout from here). */
export const DEFAULTS = {
  prefix: "ferry",
  capacity: 100,
  maxMessageSize: 1 << 20,
  expiry: 60,
  timeout: 5000,
};
/** The longest finite wait or expiry the core's u32 milliseconds carry (the next value means "none"). */
const MAX_MS = 0xffff_fffe;

const encoder = new TextEncoder();

/** Channel and group names: the one rule for both. */
export function checkName(what: string, value: unknown): string {
  if (typeof value !== "string" || !NAME_PATTERN.test(value)) {
    throw new InvalidNameError(
      `${what} ${JSON.stringify(value)} is not valid: use 1 to 100 letters, digits or . _ - !`,
    );
  }
  return value;
}

/** Namespace prefixes: the one rule for channels, groups, listing and gc. */
export function checkPrefix(value: unknown): string {
  if (typeof value !== "string" || !PREFIX_PATTERN.test(value)) {
    throw new InvalidNameError(
      `prefix ${JSON.stringify(value)} is not valid: use 1 to 100 letters, digits or _ - ! ` +
        '(no ".": it separates the prefix from the channel name)',
    );
  }
  return value;
}

/**
 * One of a few allowed strings. `quote` false keeps the older wording of Namespace's checks,
 * which print the value bare.
 */
export function checkChoice<C extends string>(
  what: string,
  value: unknown,
  choices: readonly C[],
  quote = true,
): C {
  if (!choices.includes(value as C)) {
    const allowed = choices.map((c) => `"${c}"`).join(" or ");
    throw new InvalidOptionError(`${what} must be ${allowed}, not ${quote ? JSON.stringify(value) : value}`);
  }
  return value as C;
}

/** The send mode option. */
export function checkMode(value: unknown): SendMode {
  if (value === "ack" || value === "async") return value; // per send: no array, no search
  return checkChoice("mode", value, SEND_MODES);
}

const SEND_MODES: readonly SendMode[] = ["ack", "async"];

/** A boolean option, `fallback` when absent. */
export function checkBool(what: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new InvalidOptionError(`${what} must be true or false, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** An integer option in `[min, max]`. */
export function checkInt(what: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${what} must be an integer from ${min} to ${max}, not ${value}`);
  }
  return value;
}

const { INLINE_BYTES, PAGE } = Layout;

/**
 * The `memory` option: whole bytes, and room for one message of `maxMessageSize` (its size rounded
 * up to pages; nothing when it fits inline), the rule of the core's `Layout::memory_floor`.
 */
export function checkMemory(value: number, maxMessageSize: number): number {
  const floor = maxMessageSize <= INLINE_BYTES ? 0 : Math.ceil(maxMessageSize / PAGE) * PAGE;
  if (!Number.isSafeInteger(value) || value < floor) {
    throw new InvalidOptionError(
      `memory must be an integer number of bytes of at least ${floor} (one message of ` +
        `maxMessageSize ${maxMessageSize}, rounded up to 4 KiB pages), not ${value}`,
    );
  }
  return value;
}

/** Milliseconds option check (Infinity allowed), shared with Namespace. */
export function checkMs(what: string, value: number): number {
  return checkSeconds(what, value, "milliseconds >= 0 (or Infinity)");
}

/** A number of seconds >= 0 (Infinity allowed); `unit` ends the error message. */
export function checkSeconds(what: string, value: number, unit = "seconds >= 0 (or Infinity)"): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new InvalidOptionError(`${what} must be a number of ${unit}, not ${value}`);
  }
  return value;
}

/**
 * Expiry seconds as the milliseconds the core takes, 0 meaning never. `max` is what the core's
 * field holds: u32 for a channel message, more for a group membership.
 */
export function expiryMs(
  seconds: number,
  what = "expiry",
  max = MAX_MS,
  unit = "seconds >= 0",
): number {
  checkSeconds(what, seconds, unit);
  if (seconds === 0 || seconds === Infinity) return 0;
  return Math.min(max, Math.max(1, Math.round(seconds * 1000)));
}

/** Milliseconds as the core's u32 (NO_TIMEOUT: no limit). */
export function abiMs(ms: number): number {
  return ms === Infinity ? NO_TIMEOUT : Math.min(MAX_MS, Math.ceil(ms));
}

/** The segment name the core opens: `<prefix>.<name>`, as bytes. */
export function segmentName(prefix: string, name: string): Uint8Array {
  return encoder.encode(`${prefix}.${name}`);
}

// Per-call options over the handle's defaults: one place for each.

/** The expiry a call sends with, as the core takes it. */
export function expiryOf(handle: { readonly expiryMs: number }, options?: { expiry?: number }): number {
  return options?.expiry === undefined ? handle.expiryMs : expiryMs(options.expiry);
}

/** The milliseconds a call may wait. */
export function timeoutOf(handle: { readonly timeout: number }, options?: { timeout?: number }): number {
  return options?.timeout === undefined ? handle.timeout : checkMs("timeout", options.timeout);
}

/** Whether a send waits for its release (ack mode). */
export function acks(handle: { readonly mode: SendMode }, options?: { mode?: SendMode }): boolean {
  const mode = options?.mode;
  return (mode === undefined ? handle.mode : checkMode(mode)) === "ack";
}

/** The `redelivered` send option as the core's flag: SEND_REPEAT, or 0. */
export function repeatFlag(options?: { redelivered?: boolean }): number {
  const value = options?.redelivered;
  if (value === undefined) return 0; // per send: the common case checks nothing more
  return checkBool("redelivered", value, false) ? SEND_REPEAT : 0;
}

/** The `spin` option as the core takes it (ffi/abi.ts WaitPolicy), `fallback` when absent. */
export function spinWord(value: unknown, fallback: number = WaitPolicy.SPIN_POLITE): number {
  if (value === undefined) return fallback;
  if (value === "polite") return WaitPolicy.SPIN_POLITE;
  if (value === "busy") return WaitPolicy.SPIN_BUSY;
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= WaitPolicy.SPIN_MAX_US) {
    return value;
  }
  throw new InvalidOptionError(
    `spin must be "polite", "busy" or whole microseconds from 0 to ${WaitPolicy.SPIN_MAX_US}, not ${
      JSON.stringify(value)
    }`,
  );
}
