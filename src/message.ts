// A received message. Its bytes live in memory this process owns (copied out of the shared
// segment), so they stay valid after release; `data` is decoded on first use. A zero-copy
// message's bytes are a view of shared memory instead, which its channel detaches at release or
// close: from then on the view reads length 0 and the accessors throw a typed error.

import type { Codec } from "./codec.ts";
import { ChannelClosedError, FerryError, InvalidOptionError } from "./errors.ts";
import type { ViewTicket } from "./views.ts";
import { Status } from "../ffi/status.ts";

/** What a Message needs from its channel to release itself (the channel's internal handle). */
export interface Releaser {
  /**
   * Detaches `view` (a zero-copy message's), then releases the slot, or rejects it with `outcome`
   * (a core status: REJECTED, PEER_DIED or EXPIRED).
   */
  releaseHeld(slot: number, generation: number, view: ViewTicket | null, outcome?: number): void;
}

/**
 * What `msg.reject(outcome)` makes an ack-mode sender's `send` reject with: "Rejected"
 * (RejectedError, the default), or, for a program that forwards messages and relays what happened
 * to them elsewhere (as ferry's NATS bridge does), "PeerDied" (PeerDiedError) or "Expired"
 * (ExpiredError).
 */
export type RejectOutcome = "Rejected" | "PeerDied" | "Expired";

const rejectStatus: Record<RejectOutcome, number> = {
  Rejected: Status.REJECTED,
  PeerDied: Status.PEER_DIED,
  Expired: Status.EXPIRED,
};

const token = Symbol("ferry.message");

/**
 * Builds a Message: for the channel's receive modules only, which is why the constructor is
 * private and this is not exported from mod.ts. `owner` is null for a released message.
 */
export let makeMessage: <T>(
  codec: Codec<T>,
  buf: Uint8Array,
  start: number,
  end: number,
  seq: number,
  sender: number,
  redelivered: boolean,
  owner: Releaser | null,
  slot: number,
  generation: number,
  view: ViewTicket | null,
) => Message<T>;

/**
 * A message received from a channel: its value (`data`, decoded on first use), its bytes, who
 * sent it, and, unless the channel releases it for you, the `release()` that frees its slot.
 *
 * @example Reading a message
 * ```ts
 * import { Channel } from "@ferry/ferry";
 *
 * using ch = Channel.open<{ job: number }>("jobs", { mode: "async" });
 * await ch.send({ job: 1 });
 * const msg = await ch.recv();
 * console.log(msg.data.job, "from pid", msg.sender, msg.redelivered ? "(again)" : "");
 * ```
 */
export class Message<T = unknown> {
  /** Per-sender sequence number: increases with every message the sender sent. */
  readonly seq: number;
  /** Process id of the sender. */
  readonly sender: number;
  /**
   * True when this message may have been delivered before: a receiver died or closed holding it
   * and it was queued again, or its sender marked it as a possible repeat (the `redelivered` send
   * option: a relay such as the NATS bridge, a retry after an unknown outcome).
   */
  readonly redelivered: boolean;
  #buf: Uint8Array;
  #start: number;
  #end: number;
  #codec: Codec<T>;
  #decoded = false;
  #data: T | undefined;
  #owner: Releaser | null;
  #slot: number;
  #generation: number;
  /** Zero-copy messages: the channel's ticket for the view over shared memory. */
  #view: ViewTicket | null;
  #copy: Uint8Array | null = null;

  static {
    makeMessage = (codec, buf, start, end, seq, sender, redelivered, owner, slot, generation, view) =>
      new Message(token, codec, buf, start, end, seq, sender, redelivered, owner, slot, generation, view);
  }

  private constructor(
    key: symbol,
    codec: Codec<T>,
    buf: Uint8Array,
    start: number,
    end: number,
    seq: number,
    sender: number,
    redelivered: boolean,
    owner: Releaser | null,
    slot: number,
    generation: number,
    view: ViewTicket | null,
  ) {
    if (key !== token) throw new TypeError("messages come from a Channel's receive calls");
    this.#codec = codec;
    this.#buf = buf;
    this.#start = start;
    this.#end = end;
    this.seq = seq;
    this.sender = sender;
    this.redelivered = redelivered;
    this.#owner = owner;
    this.#slot = slot;
    this.#generation = generation;
    this.#view = view;
  }

  /**
   * Zero-copy channels: the payload in shared memory, valid until release or until the channel
   * closes. Then the view is detached (it reads length 0, so a kept reference cannot reach a
   * slot that another message may now use) and this getter throws.
   */
  get view(): Uint8Array {
    if (this.#view === null) {
      throw new FerryError(
        "NotZeroCopy",
        "msg.view needs a channel opened with zeroCopy: true; use msg.bytes",
      );
    }
    this.#checkView("msg.view was used");
    return this.#buf;
  }

  /** Throws when a zero-copy message's view is gone: released, or its channel closed. */
  #checkView(what: string): void {
    if (this.released) throw new FerryError("Released", `${what} after the message was released`);
    if ((this.#buf.buffer as ArrayBuffer).detached) {
      throw new ChannelClosedError(
        `${what} after its channel was closed, which handed the message back for redelivery; ` +
          "read msg.bytes (a private copy) before close() to keep it",
      );
    }
  }

  /** The bytes this message's value is read from (a private copy for zero-copy messages). */
  #own(): Uint8Array {
    if (this.#view === null) return this.#buf;
    if (this.#copy === null) {
      this.#checkView("a zero-copy message's bytes were read");
      this.#copy = this.#buf.slice(this.#start, this.#end);
      this.#start = 0;
      this.#end = this.#copy.length;
    }
    return this.#copy;
  }

  /** The decoded value (for the raw codec, the bytes themselves). */
  get data(): T {
    if (!this.#decoded) {
      this.#data = this.#codec.decode(this.#own(), this.#start, this.#end);
      this.#decoded = true;
    }
    return this.#data as T;
  }

  /** The encoded payload as sent. */
  get bytes(): Uint8Array {
    const own = this.#own();
    return own.subarray(this.#start, this.#end);
  }

  /** Whether the message has been released (always true for auto-released messages). */
  get released(): boolean {
    return this.#owner === null;
  }

  /**
   * Tells the channel this receiver is done with the message: its slot is freed (async) or its
   * sender's `send` resolves (ack). Releasing twice does nothing.
   */
  release(): void {
    const owner = this.#owner;
    if (owner === null) return;
    this.#owner = null;
    owner.releaseHeld(this.#slot, this.#generation, this.#view);
  }

  /**
   * Tells the channel this receiver took the message and will not process it. An ack-mode sender's
   * `send` rejects at once with RejectedError (or the error `outcome` names, see RejectOutcome)
   * instead of waiting for its timeout; the message is not delivered again. An async-mode sender is
   * not waiting for anyone, so for its messages this is `release()`. Needs `autoRelease: false`
   * (an auto-released message is finished already: then, as after release, it does nothing).
   *
   * @example A worker that cannot handle a job says so to its producer
   * ```ts
   * import { Channel } from "@ferry/ferry";
   *
   * using jobs = Channel.open<{ kind: string }>("jobs", { autoRelease: false });
   * const msg = await jobs.recv();
   * if (msg.data.kind === "known") msg.release(); // the producer's send resolves
   * else msg.reject(); // the producer's send rejects with RejectedError
   * ```
   */
  reject(outcome: RejectOutcome = "Rejected"): void {
    const status = Object.hasOwn(rejectStatus, outcome) ? rejectStatus[outcome] : undefined;
    if (status === undefined) {
      throw new InvalidOptionError(
        `msg.reject() takes "Rejected", "PeerDied" or "Expired", not ${JSON.stringify(outcome)}`,
      );
    }
    const owner = this.#owner;
    if (owner === null) return;
    this.#owner = null;
    owner.releaseHeld(this.#slot, this.#generation, this.#view, status);
  }
}
