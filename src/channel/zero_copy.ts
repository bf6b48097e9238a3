// Zero-copy: bytes read and written in place in the segment's mapping. A loan lends a slot to
// write into, then commit sends it or unloan gives it back; a zeroCopy receive hands out a view
// of the payload, held until release. Every such view is tracked in the handle's registry
// (views.ts) and detached before its slot can be reused or its mapping unmapped.

import { RecvMeta, SendOut } from "../../ffi/abi.ts";
import { RECV_NO_COPY, SEND_ACK, Status } from "../../ffi/status.ts";
import { FerryError, InvalidOptionError } from "../errors.ts";
import type { Message } from "../message.ts";
import type { ChannelCore, Loan } from "./core.ts";
import { abiMs, acks, checkInt, expiryOf, repeatFlag, type SendOptions, timeoutOf } from "./options.ts";
import { messageOf } from "./receive.ts";
import { ackAfter } from "./send.ts";
import { closedError, isFull, sendError, statusError } from "./status.ts";

/** See Channel.loan. */
export function loan<T>(c: ChannelCore<T>, size: number): Uint8Array {
  checkLoan(c, size);
  const st = c.lib.ferry_loan(c.live(), size, c.sendOut);
  if (st !== Status.OK) throw sendError(c, st);
  return lent(c, size);
}

/** See Channel.loanSync: as loan, but waits for room on this thread (as sendSync does). */
export function loanSync<T>(c: ChannelCore<T>, size: number, options?: { timeout?: number }): Uint8Array {
  checkLoan(c, size);
  let st = c.lib.ferry_loan(c.live(), size, c.sendOut);
  if (isFull(st)) {
    const timeout = timeoutOf(c, options);
    const deadline = performance.now() + timeout;
    for (;;) {
      const left = deadline - performance.now();
      const timedOut = left <= 0 || c.lib.ferry_send_room_wait(c.live(), abiMs(left)) === Status.TIMEOUT;
      st = c.lib.ferry_loan(c.live(), size, c.sendOut);
      if (timedOut || !isFull(st)) break;
    }
  }
  if (st !== Status.OK) throw sendError(c, st);
  return lent(c, size);
}

function checkLoan<T>(c: ChannelCore<T>, size: number): void {
  if (!c.raw) {
    throw new InvalidOptionError('loan needs codec: "raw"');
  }
  checkInt("loan size", size, 0, c.maxMessageSize);
}

/** The view over the slot the last ferry_loan lent (its place is in `c.sendOut`), tracked. */
function lent<T>(c: ChannelCore<T>, size: number): Uint8Array {
  const out = c.sendOut;
  const slot = out[SendOut.SLOT], generation = out[SendOut.GENERATION];
  const shared = view(c, out[SendOut.OFFSET_LO] + out[SendOut.OFFSET_HI] * 0x1_0000_0000, size);
  const bytes = new Uint8Array(shared);
  c.loans.set(bytes, { slot, generation, len: size, view: c.views.track(shared) });
  return bytes;
}

/** See Channel.commit. */
export function commit<T>(
  c: ChannelCore<T>,
  bytes: Uint8Array,
  options?: SendOptions & { length?: number },
): void | Promise<void> {
  // Every option is checked before the loan leaves the caller's hands: bad input keeps it lent.
  const lent = loanOf(c, bytes);
  const len = options?.length ?? lent.len;
  checkInt("commit length", len, 0, lent.len);
  const ack = acks(c, options);
  const flags = (ack ? SEND_ACK : 0) | repeatFlag(options);
  const expiry = expiryOf(c, options);
  takeLoan(c, bytes);
  const out = c.sendOut;
  const st = c.lib.ferry_commit(c.live(), lent.slot, lent.generation, lent.len, len, flags, expiry, out);
  if (st !== Status.OK) throw sendError(c, st);
  if (ack) return ackAfter(c, out, options);
}

/** See Channel.unloan. */
export function unloan<T>(c: ChannelCore<T>, bytes: Uint8Array): void {
  const lent = takeLoan(c, bytes);
  const st = c.lib.ferry_unloan(c.live(), lent.slot, lent.generation);
  if (st !== Status.OK) throw statusError(c, st);
}

/** The loan behind `bytes`, taken out of the caller's hands: its view is detached. */
function takeLoan<T>(c: ChannelCore<T>, bytes: Uint8Array): Loan {
  const lent = loanOf(c, bytes);
  c.loans.delete(bytes);
  c.views.detach(lent.view); // the slot is no longer the caller's to write
  return lent;
}

/** The loan behind `bytes`, still the caller's. */
function loanOf<T>(c: ChannelCore<T>, bytes: Uint8Array): Loan {
  if (c.closed) throw closedError(c); // close() took every loan back
  const lent = c.loans.get(bytes);
  if (lent === undefined) {
    throw new FerryError(
      "NotLoaned",
      `that view was not lent by loan() on '${c.name}', or was used already`,
    );
  }
  return lent;
}

/** The next message queued now, claimed in place (held until release), or undefined. */
export function receiveInPlace<T>(c: ChannelCore<T>): Message<T> | undefined {
  const st = c.lib.ferry_recv(c.live(), null, 0, 0, RECV_NO_COPY, c.meta);
  return st === Status.EMPTY ? undefined : inPlace(c, st);
}

/** The zero-copy Message for a RECV_NO_COPY receive that returned `st`: held, its view tracked. */
export function inPlace<T>(c: ChannelCore<T>, st: number): Message<T> {
  if (st !== Status.OK) throw statusError(c, st);
  const meta = c.meta;
  const len = meta[RecvMeta.LEN];
  const shared = view(c, meta[RecvMeta.OFFSET_LO] + meta[RecvMeta.OFFSET_HI] * 0x1_0000_0000, len);
  return messageOf(c, meta, 0, new Uint8Array(shared), 0, true, c.views.track(shared));
}

/**
 * A copy of the message this handle holds in `slot`, in memory of its own: the caller's to keep
 * after release. The spec's `transfer` to another length copies into a new buffer and detaches
 * the source, and V8 allocates that buffer without zero-filling it, so the copy is the only pass
 * over the new memory (`new Uint8Array(len)` then a read into it writes it twice, and the first
 * pass faults its pages in). The buffer is one byte longer than the message (that byte is 0): a
 * transfer to the same length would hand over the shared memory itself instead of copying it.
 * The view is detached by the transfer, in the turn it was made, so no code can keep it.
 */
export function copyHeld<T>(c: ChannelCore<T>, slot: number, generation: number): Uint8Array<ArrayBuffer> {
  const at = c.heldAt;
  const len = c.lib.ferry_held_at(c.live(), slot, generation, at);
  if (len < 0) throw statusError(c, len);
  return new Uint8Array(view(c, at[0] + at[1] * 0x1_0000_0000, len).transfer(len + 1), 0, len);
}

/**
 * A fresh ArrayBuffer over `len` bytes of the segment: detaching it revokes every view of it.
 * The caller tracks it in `c.views` (or detaches it) in the same turn, before any code can keep it.
 */
function view<T>(c: ChannelCore<T>, offset: number, len: number): ArrayBuffer {
  c.base ??= c.lib.ferry_base(c.live());
  if (len === 0) return new ArrayBuffer(0);
  return Deno.UnsafePointerView.getArrayBuffer(c.base!, len, offset);
}
