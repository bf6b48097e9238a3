// Sending one message: encode, one sync core call when there is room, else wait for room (spin,
// then park), and in ack mode wait for the receiver's release. send, sendSync and trySend differ
// only in how they wait.

import { SendOut } from "../../ffi/abi.ts";
import { SEND_ACK, SEND_COUNT_FULL, SEND_RETRY, SIDE_SEND, Status } from "../../ffi/status.ts";
import { MessageTooLargeError } from "../errors.ts";
import type { ChannelCore } from "./core.ts";
import { abiMs, acks, expiryOf, repeatFlag, type SendOptions, spinWord, timeoutOf } from "./options.ts";
import { ackError, isFull, sendError } from "./status.ts";
import { RETRY_NOW_ATTEMPTS, retryNow, spinning, until } from "./wait.ts";

/** An async send that found room: settled already, shared (a promise per message costs ~20 ns). */
const SENT: Promise<void> = Promise.resolve();

/**
 * See Channel.send. An async-mode send that finds room is one sync core call and returns a settled
 * promise (no wait, no thread hop); the rest goes on in `sendWaiting`.
 */
export function send<T>(c: ChannelCore<T>, value: T, options?: SendOptions): Promise<void> {
  let bytes: Uint8Array, call: SendCall, st: number;
  try {
    // Every option is checked before anything is written, whether the send then waits or not.
    bytes = encode(c, value);
    call = {
      flags: (acks(c, options) ? SEND_ACK : 0) | repeatFlag(options),
      expiry: expiryOf(c, options),
      timeout: timeoutOf(c, options),
      spin: spinWord(options?.spin, c.spin),
    };
    st = c.lib.ferry_send(c.live(), bytes, bytes.length, call.flags, call.expiry, c.sendOut);
    if (isFull(st)) {
      // Room a receiver makes within microseconds is taken in this turn, with no promise set up.
      const h = c.live(), lib = c.lib, flags = call.flags | SEND_RETRY, expiry = call.expiry;
      st = retryNow(call.spin, () => {
        const s = lib.ferry_send(h, bytes, bytes.length, flags, expiry, c.sendOut);
        return isFull(s) ? undefined : s;
      }) ?? st;
    }
  } catch (e) {
    return Promise.reject(e);
  }
  if (st === Status.OK && (call.flags & SEND_ACK) === 0) return SENT;
  return sendWaiting(c, bytes, call, st);
}

/** A send's options, checked. */
interface SendCall {
  flags: number;
  expiry: number;
  timeout: number;
  spin: number;
}

/** The rest of a send whose first attempt returned `st`: wait for room if full, then for the ack. */
async function sendWaiting<T>(
  c: ChannelCore<T>,
  bytes: Uint8Array,
  call: SendCall,
  st: number,
): Promise<void> {
  const { flags, expiry, timeout, spin } = call;
  const out = c.sendOut;
  const lib = c.lib;
  // `out` is shared by every send on this handle: read it in the same turn as the call that
  // filled it, never after an await (another send may have filled it since).
  let slot = out[SendOut.SLOT], generation = out[SendOut.GENERATION];
  let deadline: number | undefined;
  if (isFull(st)) {
    deadline = performance.now() + timeout;
    bytes = bytes.slice(); // the codec may reuse its buffer while we wait
    const attempt = (extra: number) => {
      const s = lib.ferry_send(c.live(), bytes, bytes.length, flags | extra, expiry, out);
      slot = out[SendOut.SLOT];
      generation = out[SendOut.GENERATION];
      return s;
    };
    const sent = await until(
      c,
      SIDE_SEND,
      deadline,
      () => {
        const s = attempt(SEND_RETRY);
        return isFull(s) ? undefined : s;
      },
      spin,
      RETRY_NOW_ATTEMPTS,
    );
    st = sent ?? attempt(SEND_COUNT_FULL);
  }
  if (st !== Status.OK) throw sendError(c, st);
  if (flags & SEND_ACK) {
    await ackOutcome(c, slot, generation, deadline ?? performance.now() + timeout, timeout, spin);
  }
}

/** See Channel.sendSync: the core waits, on this thread. */
export function sendSync<T>(c: ChannelCore<T>, value: T, options?: SendOptions): void {
  spinning(c, spinWord(options?.spin, c.spin), () => sendSyncNow(c, value, options));
}

/** sendSync with the handle's waits already spinning as the call asked. */
function sendSyncNow<T>(c: ChannelCore<T>, value: T, options?: SendOptions): void {
  const bytes = encode(c, value);
  const ack = acks(c, options);
  const flags = (ack ? SEND_ACK : 0) | repeatFlag(options);
  const expiry = expiryOf(c, options);
  const timeout = timeoutOf(c, options);
  const out = c.sendOut;
  const lib = c.lib;
  let st = lib.ferry_send(c.live(), bytes, bytes.length, flags, expiry, out);
  if (isFull(st)) {
    st = lib.ferry_send_wait(c.live(), bytes, bytes.length, flags, expiry, abiMs(timeout), out);
  }
  if (st !== Status.OK) throw sendError(c, st);
  if (!ack) return;
  const slot = out[SendOut.SLOT], generation = out[SendOut.GENERATION];
  let outcome = lib.ferry_ack_wait(c.live(), slot, generation, abiMs(timeout));
  if (outcome === Status.TIMEOUT) outcome = lib.ferry_ack_cancel(c.live(), slot, generation);
  if (outcome !== Status.OK) throw ackError(c, outcome, timeout);
}

/** See Channel.trySend. */
export function trySend<T>(c: ChannelCore<T>, value: T, options?: SendOptions): void | Promise<void> {
  const bytes = encode(c, value);
  const ack = acks(c, options);
  const expiry = expiryOf(c, options);
  const out = c.sendOut;
  const flags = (ack ? SEND_ACK : 0) | repeatFlag(options) | SEND_COUNT_FULL;
  const st = c.lib.ferry_send(c.live(), bytes, bytes.length, flags, expiry, out);
  if (st !== Status.OK) throw sendError(c, st);
  if (ack) return ackAfter(c, out, options);
}

/**
 * The ack outcome of the message whose send (or commit) just filled `out`, waiting up to the
 * call's timeout: for trySend and commit, which return it as their promise.
 */
export function ackAfter<T>(c: ChannelCore<T>, out: Uint32Array, options?: SendOptions): Promise<void> {
  const timeout = timeoutOf(c, options);
  const spin = spinWord(options?.spin, c.spin);
  return ackOutcome(
    c,
    out[SendOut.SLOT],
    out[SendOut.GENERATION],
    performance.now() + timeout,
    timeout,
    spin,
  );
}

/** `value` encoded, checked against maxMessageSize before anything is written. */
export function encode<T>(c: ChannelCore<T>, value: T): Uint8Array {
  const bytes = c.codec.encode(value);
  if (bytes.length > c.maxMessageSize) {
    throw new MessageTooLargeError(
      `message is ${bytes.length} bytes; channel '${c.name}' takes at most ${c.maxMessageSize} ` +
        "(maxMessageSize, fixed when the channel was created)",
    );
  }
  return bytes;
}

/** Waits for a receiver to release the ack-mode message in `slot`; withdraws it at the deadline. */
async function ackOutcome<T>(
  c: ChannelCore<T>,
  slot: number,
  generation: number,
  deadline: number,
  timeout: number,
  spin: number,
): Promise<void> {
  const lib = c.lib;
  const poll = () => {
    const s = lib.ferry_ack_status(c.live(), slot, generation);
    return s === Status.PENDING ? undefined : s;
  };
  let outcome = poll() ?? await until(c, SIDE_SEND, deadline, poll, spin);
  if (outcome === undefined) outcome = lib.ferry_ack_cancel(c.live(), slot, generation);
  if (outcome !== Status.OK) throw ackError(c, outcome, timeout);
}
