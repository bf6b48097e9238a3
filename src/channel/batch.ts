// Batches: many messages per core call. Sends encode every value end to end first (bad input
// sends nothing), then move as many per ferry_send_batch as fit; receives copy up to `max`
// messages into the handle's chunk in one ferry_recv_batch. Async mode only.

import { BatchMeta, MetaFlag } from "../../ffi/abi.ts";
import { RECV_AUTO_RELEASE, SIDE_RECV, SIDE_SEND, Status } from "../../ffi/status.ts";
import { TimeoutError } from "../errors.ts";
import type { Message } from "../message.ts";
import { BATCH_MAX, type ChannelCore, type Staged } from "./core.ts";
import {
  abiMs,
  checkInt,
  expiryOf,
  type RecvOptions,
  repeatFlag,
  type SendManyOptions,
  spinWord,
  timeoutOf,
} from "./options.ts";
import { ensureChunk, messageOf, readHeld, recvSyncNow } from "./receive.ts";
import { encode } from "./send.ts";
import { isFull, nothingArrived, sendError, statusError } from "./status.ts";
import { spinning, until } from "./wait.ts";
import { receiveInPlace } from "./zero_copy.ts";

/** See Channel.trySendMany. */
export function trySendMany<T>(
  c: ChannelCore<T>,
  values: readonly T[],
  options?: Omit<SendManyOptions, "timeout">,
): number {
  const staged = stage(c, values);
  return sendStaged(c, staged, 0, repeatFlag(options), expiryOf(c, options), true);
}

/** See Channel.sendManySync: the core waits for room, on this thread. */
export function sendManySync<T>(
  c: ChannelCore<T>,
  values: readonly T[],
  options?: SendManyOptions,
): void {
  const staged = stage(c, values);
  const flags = repeatFlag(options);
  const expiry = expiryOf(c, options);
  const timeout = timeoutOf(c, options);
  let deadline: number | undefined;
  for (let sent = sendStaged(c, staged, 0, flags, expiry, false); sent < values.length;) {
    deadline ??= performance.now() + timeout;
    const left = deadline - performance.now();
    if (left <= 0 || c.lib.ferry_send_room_wait(c.live(), abiMs(left)) === Status.TIMEOUT) {
      throw stayedFull(c, "sendManySync", sent, values.length, timeout);
    }
    sent = sendStaged(c, staged, sent, flags, expiry, false);
  }
}

/** See Channel.sendMany. */
export async function sendMany<T>(
  c: ChannelCore<T>,
  values: readonly T[],
  options?: SendManyOptions,
): Promise<void> {
  const flags = repeatFlag(options);
  const expiry = expiryOf(c, options);
  const timeout = timeoutOf(c, options);
  const first = sendStaged(c, stage(c, values), 0, flags, expiry, false);
  if (first === values.length) return;
  // It must wait: what is left moves out of the handle's staging, which other calls reuse meanwhile.
  const rest = unsentOf(c.staging, first);
  let sent = 0;
  const done = await until(c, SIDE_SEND, performance.now() + timeout, () => {
    sent = sendStaged(c, rest, sent, flags, expiry, false);
    return sent === rest.count ? true : undefined;
  });
  if (done === undefined) throw stayedFull(c, "sendMany", first + sent, values.length, timeout);
}

/** A copy of the messages of `staged` from index `from` on, staged on their own. */
function unsentOf(staged: Staged, from: number): Staged {
  const count = staged.count - from;
  const base = staged.offsets[from];
  const offsets = new Float64Array(count + 1);
  for (let i = 0; i <= count; i++) offsets[i] = staged.offsets[from + i] - base;
  return {
    bytes: staged.bytes.slice(base, staged.offsets[staged.count]),
    lens: staged.lens.slice(from, staged.count),
    offsets,
    count,
  };
}

/** A batch send that ran out of time: counted as a full event, reported with how far it got. */
function stayedFull<T>(c: ChannelCore<T>, call: string, sent: number, total: number, timeout: number) {
  c.lib.ferry_note_full(c.live());
  return new TimeoutError(
    `${call} on '${c.name}' sent ${sent} of ${total} within ${timeout} ms; the channel stayed full`,
  );
}

/**
 * Encodes every value end to end into the handle's staging, checking each before anything is sent.
 * Valid until the next batch send on this handle: a caller that waits copies what is left first.
 */
function stage<T>(c: ChannelCore<T>, values: readonly T[]): Staged {
  const st = c.staging;
  if (st.lens.length < values.length) {
    st.lens = new Uint32Array(values.length);
    st.offsets = new Float64Array(values.length + 1);
  }
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    const part = encode(c, values[i]);
    if (total + part.length > st.bytes.length) {
      const grown = new Uint8Array(Math.max(2 * st.bytes.length, total + part.length));
      grown.set(st.bytes.subarray(0, total));
      st.bytes = grown;
    }
    st.bytes.set(part, total); // now, before the codec reuses its buffer for the next value
    st.lens[i] = part.length;
    st.offsets[i] = total;
    total += part.length;
  }
  st.offsets[values.length] = total;
  st.count = values.length;
  return st;
}

/** Sends staged messages from index `from` on, with `flags` (SEND_REPEAT); returns the index reached. */
function sendStaged<T>(
  c: ChannelCore<T>,
  staged: Staged,
  from: number,
  flags: number,
  expiry: number,
  countFull: boolean,
): number {
  const out = c.sendOut;
  let at = from;
  while (at < staged.count) {
    const count = Math.min(BATCH_MAX, staged.count - at);
    const start = staged.offsets[at];
    const bytes = staged.bytes.subarray(start, staged.offsets[at + count]);
    const st = c.lib.ferry_send_batch(
      c.live(),
      bytes,
      bytes.length,
      staged.lens.subarray(at, at + count),
      count,
      flags,
      expiry,
      out,
    );
    at += out[0]; // ferry_send_batch: how many it sent
    if (st === Status.OK) continue;
    if (isFull(st)) {
      if (countFull) c.lib.ferry_note_full(c.live());
      return at;
    }
    throw sendError(c, st);
  }
  return at;
}

/** See Channel.tryRecvMany. */
export function tryRecvMany<T>(c: ChannelCore<T>, max = 64): Message<T>[] {
  checkInt("max", max, 1, BATCH_MAX);
  return recvBatchNow(c, max) ?? [];
}

/** Up to `max` messages now (`max` checked by the caller), or undefined when there are none: a
 * wait's repeated attempts allocate nothing while the channel is empty. */
function recvBatchNow<T>(c: ChannelCore<T>, max: number): Message<T>[] | undefined {
  if (c.zeroCopy) {
    // Views cannot share a chunk: claimed one by one, each in place.
    let m = receiveInPlace(c);
    if (m === undefined) return undefined;
    const got: Message<T>[] = [];
    for (; m !== undefined; m = got.length < max ? receiveInPlace(c) : undefined) got.push(m);
    return got;
  }
  return batchMessages(c, recvBatchCall(c, max), c.autoRelease);
}

/**
 * One batch receive into what is left of the chunk: at once, or waiting up to `timeout` ms in the
 * core. Its status; `c.chunkUsed` is still where the batch's payloads start.
 */
function recvBatchCall<T>(c: ChannelCore<T>, max: number, timeout?: number): number {
  ensureChunk(c);
  const h = c.live(), chunk = c.chunk, flags = c.autoRelease ? RECV_AUTO_RELEASE : 0, meta = c.batchMeta;
  // Written out twice, not through an argument array: a wait's attempts allocate nothing.
  return timeout === undefined
    ? c.lib.ferry_recv_batch(h, chunk, chunk.length, c.chunkUsed, max, flags, meta, meta.length, c.batchCount)
    : c.lib.ferry_recv_batch_wait(
      h,
      chunk,
      chunk.length,
      c.chunkUsed,
      max,
      flags,
      meta,
      meta.length,
      c.batchCount,
      abiMs(timeout),
    );
}

/** See Channel.recvManySync. */
export function recvManySync<T>(c: ChannelCore<T>, max = 64, options?: RecvOptions): Message<T>[] {
  checkInt("max", max, 1, BATCH_MAX);
  return spinning(c, spinWord(options?.spin, c.spin), () => recvManySyncNow(c, max, options));
}

function recvManySyncNow<T>(c: ChannelCore<T>, max: number, options?: RecvOptions): Message<T>[] {
  if (c.zeroCopy) {
    const first = recvSyncNow(c, options);
    return max === 1 ? [first] : [first, ...tryRecvMany(c, max - 1)];
  }
  const timeout = timeoutOf(c, options);
  const st = recvBatchCall(c, max, timeout);
  if (st === Status.TIMEOUT) throw nothingArrived(c, timeout);
  return batchMessages(c, st, c.autoRelease) ?? [];
}

/** See Channel.recvMany. */
export async function recvMany<T>(c: ChannelCore<T>, max = 64, options?: RecvOptions): Promise<Message<T>[]> {
  checkInt("max", max, 1, BATCH_MAX);
  const spin = spinWord(options?.spin, c.spin);
  const now = recvBatchNow(c, max);
  if (now !== undefined) return now;
  const timeout = timeoutOf(c, options);
  const got = await until(c, SIDE_RECV, performance.now() + timeout, () => recvBatchNow(c, max), spin);
  if (got === undefined) throw nothingArrived(c, timeout);
  return got;
}

/** Messages of a batch receive that returned `st` into the chunk from `c.chunkUsed` on (undefined: none). */
function batchMessages<T>(c: ChannelCore<T>, st: number, auto: boolean): Message<T>[] | undefined {
  if (st === Status.EMPTY) return undefined;
  if (st !== Status.OK) throw statusError(c, st);
  const base = c.chunkUsed;
  const meta = c.batchMeta;
  const chunk = c.chunk;
  const n = c.batchCount[0];
  const got = new Array<Message<T>>(n);
  let end = base;
  for (let i = 0, e = 0; i < n; i++, e += BatchMeta.STRIDE) {
    if (meta[e + BatchMeta.FLAGS] & MetaFlag.NEEDS_BUFFER) {
      // Too big for what was left of the chunk: held, read on its own (only the last can be).
      c.chunkUsed = end;
      const held = readHeld(
        c,
        meta[e + BatchMeta.SLOT],
        meta[e + BatchMeta.GENERATION],
        meta[e + BatchMeta.LEN],
        auto,
        false,
      );
      got[i] = messageOf(c, meta, e, held, 0, !auto, null);
      return got;
    }
    const start = base + meta[e + BatchMeta.AT];
    end = start + meta[e + BatchMeta.LEN];
    got[i] = messageOf(c, meta, e, chunk, start, !auto, null);
  }
  c.chunkUsed = end;
  return got;
}
