// The open handle behind a Channel: its settings once validated, the native handle and its
// lifecycle (open, close, free, and the finalizer for a handle dropped without close()), and the
// buffers the send, receive, batch, zero-copy and wait modules share. Those modules are functions
// over a ChannelCore; Channel (channel.ts) is the public face that holds one and delegates.

import { core } from "../../ffi/lib.ts";
import { BatchMeta, InfoOut, RecvMeta, SendOut, WaitPolicy } from "../../ffi/abi.ts";
import { MEMORY_DEFAULT, OPEN_EXISTING, SIDE_RECV, SIDE_SEND, Status } from "../../ffi/status.ts";
import { capacityFor } from "../capacity.ts";
import { type Codec, makeCodec } from "../codec.ts";
import { InvalidOptionError } from "../errors.ts";
import type { Releaser } from "../message.ts";
import { readReport, reportBuffer, trustOf } from "../open.ts";
import { Views, type ViewTicket } from "../views.ts";
import {
  abiMs,
  checkBool,
  checkInt,
  checkMemory,
  checkMode,
  checkMs,
  checkName,
  checkPrefix,
  DEFAULTS,
  expiryMs,
  type OpenOptions,
  segmentName,
  type SendMode,
  spinWord,
} from "./options.ts";
import { type Parked, unpark } from "./waiter.ts";
import { closedError, openError, statusError } from "./status.ts";

/** Messages one batch call moves at most. */
export const BATCH_MAX = 256;
/** Received payloads are copied into chunks of this size, one `subarray` each. */
export const CHUNK_BYTES = 64 * 1024;

/** Messages encoded end to end for a batch send. */
export interface Staged {
  bytes: Uint8Array;
  lens: Uint32Array;
  offsets: Float64Array;
  count: number;
}

/** A slot lent by `loan`: what commit/unloan need, and the ticket to detach its view. */
export interface Loan {
  slot: number;
  generation: number;
  len: number;
  view: ViewTicket;
}

// The last resort for a channel dropped without close(): closes and unmaps it. It is registered
// on the public Channel, which its core keeps reachable (`owner`), as does every held message
// (through its releaser, the core) and every live view (views.ts pins the owner): so it cannot run
// while a message could still be released through the handle or a view over the mapping is alive
// and not detached.
const finalizer = new FinalizationRegistry<{ handle: Deno.PointerObject; codec: Codec<unknown> }>(
  ({ handle, codec }) => {
    const lib = core();
    lib.ferry_close(handle);
    lib.ferry_free(handle);
    codec.shared?.release();
  },
);

/**
 * One open channel handle's state. Its fields are plain (not `#private`) so that the modules of
 * this folder can share them; the type is never exported from mod.ts, and Channel keeps its core
 * in a `#private` field, so users cannot reach it.
 */
export class ChannelCore<T> implements Releaser {
  // Settings, validated; capacity, maxMessageSize and memory are the creator's, read back.
  readonly name: string;
  readonly prefix: string;
  readonly mode: SendMode;
  readonly slots: number;
  readonly capacity: number;
  readonly maxMessageSize: number;
  /** Most bytes the slots' pages may take (the `memory` option). */
  readonly memory: number;
  readonly expiry: number;
  /** `expiry` as the core takes it. */
  readonly expiryMs: number;
  readonly timeout: number;
  readonly autoRelease: boolean;
  readonly zeroCopy: boolean;
  readonly codec: Codec<T>;
  /** The raw codec: loans are allowed. */
  readonly raw: boolean;

  /** The `spin` option's ABI word (ffi/abi.ts WaitPolicy), the core's copy set at open. */
  readonly spin: number;

  readonly lib = core();
  readonly handle: Deno.PointerObject;
  closed = false;

  // Sending (send.ts): the core's out-params of the last send, loan or commit.
  readonly sendOut = new Uint32Array(SendOut.LENGTH);

  // Receiving (receive.ts): the last receive's meta, and the chunk payloads are copied into.
  readonly meta = new Uint32Array(RecvMeta.LENGTH);
  chunk = new Uint8Array(CHUNK_BYTES);
  chunkUsed = 0;
  /** Where a held message lies (`ferry_held_at`'s out-param), for the copies zero_copy.ts makes. */
  readonly heldAt = new Uint32Array(2);

  // Batches (batch.ts).
  readonly batchMeta = new Uint32Array(BatchMeta.STRIDE * BATCH_MAX);
  readonly batchCount = new Uint32Array(1);
  /** Staging reused by synchronous batch sends (typed arrays cost about 1 us each to make). */
  readonly staging: Staged = {
    bytes: new Uint8Array(64 * 1024),
    lens: new Uint32Array(BATCH_MAX),
    offsets: new Float64Array(BATCH_MAX + 1),
    count: 0,
  };

  // Zero-copy (zero_copy.ts).
  /** The segment's mapping, fetched on the first view. */
  base: Deno.PointerObject | null = null;
  /** Slots lent by `loan`, by the view handed out (weakly: the views registry detaches them). */
  readonly loans = new WeakMap<Uint8Array, Loan>();
  /** Every loan view and zero-copy message view out now: detached before close() unmaps. */
  readonly views: Views;

  // Waiting (wait.ts).
  /** The one park in progress per side (SIDE_RECV, SIDE_SEND), shared by its waiters. */
  readonly parked: [Parked | null, Parked | null] = [null, null];
  /** The polite spin's budget per side in microseconds, adapted to how soon answers came. */
  readonly spinUs: [number, number] = [0, 0];
  /** Quick answers after a park per side: every few, the polite spin tries its longest (wait.ts). */
  readonly spinTries: [number, number] = [0, 0];
  /** The peer side's wake count as this side's last wait found it, per side (wait.ts peerWoken). */
  readonly peerEpoch: [number, number] = [0, 0];
  /** Spins after a woken peer that parked anyway, in a row, per side. */
  readonly wokenMisses: [number, number] = [0, 0];
  /** Woken peers still to go unheeded after a miss, per side. */
  readonly wokenSkips: [number, number] = [0, 0];
  /** A park cut short to spin, per side: set by a release that woke a sender (see releaseHeld). */
  readonly respin: [boolean, boolean] = [false, false];

  /** The Channel this is the core of: kept reachable by whatever keeps the core (see finalizer). */
  readonly owner: object;

  /** Opens (creating if absent) the channel `name` for `owner`; throws the typed error when it cannot. */
  constructor(owner: object, name: string, options: OpenOptions<T>) {
    this.owner = owner;
    this.views = new Views(owner);
    this.name = checkName("channel name", name);
    this.prefix = checkPrefix(options.prefix ?? DEFAULTS.prefix);
    const mode = checkMode(options.mode ?? "ack");
    this.mode = mode;
    this.slots = checkInt("slots", options.slots ?? (mode === "ack" ? 1 : 16), 1, 32);
    const patterned = capacityFor(this.name, options.channelCapacity);
    const explicitCapacity = patterned !== undefined || options.capacity !== undefined;
    const capacity = checkInt("capacity", patterned ?? options.capacity ?? DEFAULTS.capacity, 1, 65536);
    const maxMessageSize = checkInt(
      "maxMessageSize",
      options.maxMessageSize ?? DEFAULTS.maxMessageSize,
      0,
      1 << 30,
    );
    const memory = options.memory === undefined ? undefined : checkMemory(options.memory, maxMessageSize);
    this.expiry = options.expiry ?? DEFAULTS.expiry;
    this.expiryMs = expiryMs(this.expiry);
    this.timeout = checkMs("timeout", options.timeout ?? DEFAULTS.timeout);
    this.autoRelease = checkBool("autoRelease", options.autoRelease, true);
    this.zeroCopy = checkBool("zeroCopy", options.zeroCopy, false);
    const create = checkBool("create", options.create, true);
    this.spin = spinWord(options.spin);
    if (this.zeroCopy && options.codec !== "raw") {
      throw new InvalidOptionError('zeroCopy needs codec: "raw" (views are bytes in shared memory)');
    }
    const trust = trustOf(options);
    this.codec = makeCodec(options.codec, { prefix: this.prefix, trust });
    this.raw = options.codec === "raw";

    const bytes = segmentName(this.prefix, this.name);
    const err = reportBuffer();
    const h = this.lib.ferry_open(
      bytes,
      bytes.length,
      capacity,
      maxMessageSize,
      memory === undefined ? MEMORY_DEFAULT : memory % 0x1_0000_0000,
      memory === undefined ? MEMORY_DEFAULT : Math.floor(memory / 0x1_0000_0000),
      trust.permissions,
      this.slots,
      create ? 0 : OPEN_EXISTING,
      abiMs(this.timeout),
      trust.owners,
      trust.owners.length,
      err,
    );
    if (h === null) {
      throw openError(readReport(err), {
        prefix: this.prefix,
        name: this.name,
        bytes: memory ?? capacity * maxMessageSize,
        trust,
        timeout: this.timeout,
      });
    }
    this.handle = h;
    this.codec.shared?.retain();
    if (this.spin !== WaitPolicy.SPIN_POLITE) this.lib.ferry_set_spin(h, this.spin);
    const info = new Uint32Array(InfoOut.LENGTH);
    this.lib.ferry_info(h, info);
    this.capacity = info[InfoOut.CAPACITY];
    this.maxMessageSize = info[InfoOut.MAX_MESSAGE];
    this.memory = info[InfoOut.MEMORY_LO] + info[InfoOut.MEMORY_HI] * 0x1_0000_0000;
    // Creation settings are the creator's. One this call asked for explicitly and did not get is
    // an error, not a silent substitute (the caller sized its messages or its queue on it).
    const asked = {
      capacity: explicitCapacity ? capacity : undefined,
      maxMessageSize: options.maxMessageSize,
      memory,
    };
    for (
      const [what, wanted, got] of [
        ["capacity", asked.capacity, this.capacity],
        ["maxMessageSize", asked.maxMessageSize, this.maxMessageSize],
        ["memory", asked.memory, this.memory],
      ] as const
    ) {
      if (wanted !== undefined && wanted !== got) {
        this.codec.shared?.release();
        this.lib.ferry_close(h);
        this.lib.ferry_free(h);
        throw new InvalidOptionError(
          `channel '${this.name}' exists with ${what} ${got}, not the ${wanted} this open asked for ` +
            `(${what} is fixed when a channel is created): leave ${what} out to take the channel's, ` +
            `or remove the channel (Channel.unlink) to create it anew`,
        );
      }
    }
    finalizer.register(owner, { handle: h, codec: this.codec }, this);
  }

  /** The native handle, or ChannelClosedError after close(). */
  live(): Deno.PointerObject {
    if (this.closed) throw closedError(this);
    return this.handle;
  }

  /**
   * Releases a held message (Message.release), or with `outcome` rejects it (Message.reject):
   * detaches its view first, before the slot can be reused.
   */
  releaseHeld(slot: number, generation: number, view: ViewTicket | null, outcome: number = Status.OK): void {
    if (this.closed) return; // closing detached the views and handed the messages back
    if (view !== null) this.views.detach(view);
    const h = this.live();
    const st = outcome === Status.OK
      ? this.lib.ferry_release(h, slot, generation)
      : this.lib.ferry_reject(h, slot, generation, outcome);
    if (st !== Status.OK) throw statusError(this, st);
    // A receive of this handle parked while it held the message (a relay, or a worker taking the
    // next message before it finished this one). The release woke the sender it answered, which
    // most often sends again at once: the receive stops sleeping and spins through that sender's
    // wake-up instead, as a wait does after a woken peer (wait.ts). Caught so, the next message
    // costs neither side a wake, where the park costs two thread hops here and a syscall there.
    // Polite handles only: their waits are the ones that spin after a woken peer, and the only ones
    // that keep peerEpoch current.
    const parked = this.parked[SIDE_RECV];
    if (
      parked !== null && this.spin === WaitPolicy.SPIN_POLITE &&
      this.lib.ferry_wake_epoch(h, SIDE_SEND) !== this.peerEpoch[SIDE_RECV]
    ) {
      this.respin[SIDE_RECV] = true;
      unpark(parked.token);
    }
  }

  /** See Channel.close. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    finalizer.unregister(this);
    // Views first: ferry_close frees loaned slots and hands held messages to others, and
    // ferry_free unmaps; a view left attached would then write another message or fault.
    this.views.detachAll();
    // Parked waits settle now and find the handle closed (ChannelClosedError). The waiting thread
    // keeps what it sleeps on alive by itself (core/src/waiter.rs), so the handle is freed at once.
    for (const p of this.parked) if (p !== null) unpark(p.token);
    this.lib.ferry_close(this.handle);
    this.lib.ferry_free(this.handle);
    this.codec.shared?.release();
  }
}
