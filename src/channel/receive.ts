// Receiving one message: one sync core call copies the payload into the handle's current chunk
// (or, zero-copy, claims it in place), and the Message is built over those bytes. recv waits by
// spinning then parking, recvSync lets the core wait on this thread, tryRecv never waits (the
// `for await` loop, messages.ts, is built on it).

import { MetaFlag, RecvMeta } from "../../ffi/abi.ts";
import { RECV_AUTO_RELEASE, RECV_NO_COPY, SIDE_RECV, Status } from "../../ffi/status.ts";
import { InvalidOptionError } from "../errors.ts";
import { makeMessage, type Message } from "../message.ts";
import { type ChannelCore, CHUNK_BYTES } from "./core.ts";
import { abiMs, type RecvOneOptions, spinWord, timeoutOf } from "./options.ts";
import { nothingArrived, statusError } from "./status.ts";
import { spinning, until } from "./wait.ts";
import { inPlace, receiveInPlace } from "./zero_copy.ts";

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

/** Builds the Message for a receive that returned `st` (OK or NEED_BUFFER), into `into` if given. */
function received<T>(c: ChannelCore<T>, st: number, auto: boolean, into?: Uint8Array): Message<T> {
  const meta = c.meta;
  const slot = meta[RecvMeta.SLOT], generation = meta[RecvMeta.GENERATION], len = meta[RecvMeta.LEN];
  let buf = into ?? c.chunk;
  let start = into === undefined ? c.chunkUsed : 0;
  if (st === Status.NEED_BUFFER) {
    // Too big for what was left of the chunk (or for `into`): still claimed, read into a fresh
    // chunk (or a buffer of its own if it would take more than a quarter of one).
    if (into === undefined && len <= CHUNK_BYTES / 4) {
      c.chunk = buf = new Uint8Array(CHUNK_BYTES);
    } else {
      buf = new Uint8Array(len);
    }
    start = 0;
    const n = c.lib.ferry_read(c.live(), slot, generation, buf, buf.length, start);
    if (n < 0) throw statusError(c, n);
    if (auto) c.lib.ferry_release(c.live(), slot, generation);
  } else if (st !== Status.OK) {
    throw statusError(c, st);
  }
  if (buf === c.chunk) c.chunkUsed = start + len;
  return makeMessage<T>(
    c.codec,
    buf,
    start,
    start + len,
    meta[RecvMeta.SEQ_LO] + meta[RecvMeta.SEQ_HI] * 0x1_0000_0000,
    meta[RecvMeta.PID],
    (meta[RecvMeta.FLAGS] & MetaFlag.REDELIVERED) !== 0,
    auto ? null : c,
    slot,
    generation,
    null,
  );
}
