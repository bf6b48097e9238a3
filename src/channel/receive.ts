// Receiving one message: one sync core call copies the payload into the handle's current chunk
// (or, zero-copy, claims it in place), and the Message is built over those bytes. recv waits by
// spinning then parking, recvSync lets the core wait on this thread, tryRecv never waits (the
// `for await` loop, messages.ts, is built on it).

import { MetaFlag, RecvMeta } from "../../ffi/abi.ts";
import { RECV_AUTO_RELEASE, RECV_NO_COPY, SIDE_RECV, Status } from "../../ffi/status.ts";
import { InvalidOptionError } from "../errors.ts";
import { makeMessage, type Message } from "../message.ts";
import { type ChannelCore, CHUNK_BYTES } from "./core.ts";
import type { ViewTicket } from "../views.ts";
import { abiMs, type RecvOneOptions, spinWord, timeoutOf } from "./options.ts";
import { nothingArrived, statusError } from "./status.ts";
import { spinning, until } from "./wait.ts";
import { copyHeld, inPlace, receiveInPlace } from "./zero_copy.ts";

/** Below this much room left, start a new chunk before receiving. */
const CHUNK_MIN_FREE = 4 * 1024;

/** See Channel.recv. */
export async function recv<T>(c: ChannelCore<T>, options?: RecvOneOptions): Promise<Message<T>> {
  const auto = c.autoRelease;
  const spin = spinWord(options?.spin, c.spin);
  const into = intoOf(c, options);
  const now = receive(c, auto, into);
  if (now !== undefined) return now;
  const timeout = timeoutOf(c, options);
  const got = await until(c, SIDE_RECV, performance.now() + timeout, () => receive(c, auto, into), spin);
  if (got === undefined) throw nothingArrived(c, timeout);
  return got;
}

/** See Channel.recvSync: the core waits, on this thread. */
export function recvSync<T>(c: ChannelCore<T>, options?: RecvOneOptions): Message<T> {
  return spinning(c, spinWord(options?.spin, c.spin), () => recvSyncNow(c, options));
}

/** recvSync with the handle's waits already spinning as the call asked. */
export function recvSyncNow<T>(c: ChannelCore<T>, options?: RecvOneOptions): Message<T> {
  const timeout = timeoutOf(c, options);
  const zeroCopy = c.zeroCopy;
  const auto = !zeroCopy && c.autoRelease;
  const into = intoOf(c, options);
  if (!zeroCopy && into === undefined) ensureChunk(c);
  const dst = zeroCopy ? null : into ?? c.chunk;
  const st = c.lib.ferry_recv_wait(
    c.live(),
    dst,
    dst === null ? 0 : dst.length,
    zeroCopy || into !== undefined ? 0 : c.chunkUsed,
    zeroCopy ? RECV_NO_COPY : auto ? RECV_AUTO_RELEASE : 0,
    c.meta,
    abiMs(timeout),
  );
  if (st === Status.TIMEOUT) throw nothingArrived(c, timeout);
  return zeroCopy ? inPlace(c, st) : received(c, st, auto, into);
}

/** The caller's `into` buffer, checked. */
function intoOf<T>(c: ChannelCore<T>, options?: RecvOneOptions): Uint8Array | undefined {
  const into = options?.into;
  if (into === undefined) return undefined;
  if (!(into instanceof Uint8Array)) throw new InvalidOptionError("into must be a Uint8Array");
  if (c.zeroCopy) throw new InvalidOptionError("into is for copying receives; this handle is zeroCopy");
  return into;
}

/** The next message queued now, or undefined; released at once when `auto`; copied into `into` if given. */
export function receive<T>(c: ChannelCore<T>, auto: boolean, into?: Uint8Array): Message<T> | undefined {
  if (c.zeroCopy) return receiveInPlace(c);
  if (into === undefined) ensureChunk(c);
  const dst = into ?? c.chunk;
  const st = c.lib.ferry_recv(
    c.live(),
    dst,
    dst.length,
    into === undefined ? c.chunkUsed : 0,
    auto ? RECV_AUTO_RELEASE : 0,
    c.meta,
  );
  return st === Status.EMPTY ? undefined : received(c, st, auto, into);
}

/** Starts a new chunk when the current one has too little room left for a receive. */
export function ensureChunk<T>(c: ChannelCore<T>): void {
  if (c.chunk.length - c.chunkUsed < CHUNK_MIN_FREE) {
    c.chunk = new Uint8Array(CHUNK_BYTES);
    c.chunkUsed = 0;
  }
}

/**
 * From this many bytes on, a payload that gets a buffer of its own is copied by `copyHeld` (one
 * pass over memory V8 does not zero-fill); below it a zero-filled buffer and a core read cost
 * less, since making the view and transferring it costs about a microsecond (measured: 20 KB
 * about 1 us slower that way, 256 KiB 15% and 1 MiB 30% faster).
 */
const COPY_HELD_FROM = CHUNK_BYTES;

/** A copy of the message held in `slot`, `len` bytes, in a buffer of its own (the caller's to keep). */
export function ownCopy<T>(
  c: ChannelCore<T>,
  slot: number,
  generation: number,
  len: number,
): Uint8Array<ArrayBuffer> {
  if (len >= COPY_HELD_FROM) return copyHeld(c, slot, generation);
  // At least one byte: the binding passes an empty buffer as a null pointer.
  const buf = new Uint8Array(Math.max(len, 1));
  readInto(c, slot, generation, buf);
  return buf;
}

/** Copies the message held in `slot` into the start of `buf`, which holds it. */
function readInto<T>(c: ChannelCore<T>, slot: number, generation: number, buf: Uint8Array): void {
  const n = c.lib.ferry_read(c.live(), slot, generation, buf, buf.length, 0);
  if (n < 0) throw statusError(c, n);
}

/** Builds the Message for a receive that returned `st` (OK or NEED_BUFFER), into `into` if given. */
function received<T>(c: ChannelCore<T>, st: number, auto: boolean, into?: Uint8Array): Message<T> {
  const meta = c.meta;
  let buf = into ?? c.chunk;
  let start = into === undefined ? c.chunkUsed : 0;
  if (st === Status.NEED_BUFFER) {
    buf = readHeld(
      c,
      meta[RecvMeta.SLOT],
      meta[RecvMeta.GENERATION],
      meta[RecvMeta.LEN],
      auto,
      into !== undefined,
    );
    start = 0;
  } else if (st !== Status.OK) {
    throw statusError(c, st);
  } else if (buf === c.chunk) {
    c.chunkUsed = start + meta[RecvMeta.LEN];
  }
  return messageOf(c, meta, 0, buf, start, !auto, null);
}

/**
 * A message the core left claimed because it did not fit what was left of the chunk (or `into`):
 * read into a fresh chunk, or into a buffer of its own when it would take more than a quarter of
 * one or `own` says so; released at once when `auto`. Its payload starts at 0 of what is returned.
 */
export function readHeld<T>(
  c: ChannelCore<T>,
  slot: number,
  generation: number,
  len: number,
  auto: boolean,
  own: boolean,
): Uint8Array {
  let buf: Uint8Array;
  if (!own && len <= CHUNK_BYTES / 4) {
    c.chunk = buf = new Uint8Array(CHUNK_BYTES);
    c.chunkUsed = len;
    readInto(c, slot, generation, buf);
  } else {
    buf = ownCopy(c, slot, generation, len);
  }
  if (auto) c.lib.ferry_release(c.live(), slot, generation);
  return buf;
}

/**
 * The Message described by the core's meta from `meta[e]` on (a RecvMeta, or one BatchMeta entry:
 * their fields up to FLAGS sit at the same places, which tests/abi.test.ts checks), its payload at
 * `buf[start..]`. `held`: the app releases it (else the core already did); `view`: a zero-copy
 * message's ticket.
 */
export function messageOf<T>(
  c: ChannelCore<T>,
  meta: Uint32Array,
  e: number,
  buf: Uint8Array,
  start: number,
  held: boolean,
  view: ViewTicket | null,
): Message<T> {
  return makeMessage<T>(
    c.codec,
    buf,
    start,
    start + meta[e + RecvMeta.LEN],
    meta[e + RecvMeta.SEQ_LO] + meta[e + RecvMeta.SEQ_HI] * 0x1_0000_0000,
    meta[e + RecvMeta.PID],
    (meta[e + RecvMeta.FLAGS] & MetaFlag.REDELIVERED) !== 0,
    held ? c : null,
    meta[e + RecvMeta.SLOT],
    meta[e + RecvMeta.GENERATION],
    view,
  );
}
