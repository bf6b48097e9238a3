// A received message. Its bytes live in memory this process owns (copied out of the shared
// segment), so they stay valid after release; `data` is decoded on first use.

import type { Codec } from "./codec.ts";
import { FerryError } from "./errors.ts";

/** What a Message needs from its channel to release itself. */
export interface Releaser {
  releaseHeld(slot: number, generation: number): void;
}

export class Message<T = unknown> {
  /** Per-sender sequence number: increases with every message the sender sent. */
  readonly seq: number;
  /** Process id of the sender. */
  readonly sender: number;
  /** True when a receiver died holding this message and it was queued again. */
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
  /** Zero-copy messages: the buffer over shared memory, detached at release. */
  #shared: ArrayBuffer | null;
  #copy: Uint8Array | null = null;

  /** @internal Built by Channel. */
  constructor(
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
    shared: ArrayBuffer | null = null,
  ) {
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
    this.#shared = shared;
  }

  /** Zero-copy channels: the payload in shared memory, valid until release. */
  get view(): Uint8Array {
    if (this.#shared === null) {
      throw new FerryError(
        "NotZeroCopy",
        "msg.view needs a channel opened with zeroCopy: true; use msg.bytes",
      );
    }
    if (this.released) throw new FerryError("Released", "msg.view was used after the message was released");
    return this.#buf;
  }

  /** The bytes this message's value is read from (a private copy for zero-copy messages). */
  #own(): Uint8Array {
    if (this.#shared === null) return this.#buf;
    if (this.#copy === null) {
      if (this.released) {
        throw new FerryError("Released", "a zero-copy message's bytes were read after it was released");
      }
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
    try {
      owner.releaseHeld(this.#slot, this.#generation);
    } finally {
      this.#shared?.transfer(0); // every view of the slot is revoked: it may be reused now
    }
  }
}
