// msgpack with shapes shared through the namespace: the default codec of every channel handle.
// An object's keys are written once into the namespace's structure store (core/src/structs) and
// each message names its shape by id, which makes encoding about 2x and decoding about 3x faster
// for small objects. Every process of the namespace reads the same store, lazily: a receiver
// that meets an id it does not know reads the entries added since it last looked.
//
// A message that names shapes starts with TAG and the store's nonce, so it is never decoded
// against another store (another namespace's, or one removed and made again): that is a
// DecodeError, never an object with wrong keys. When the store cannot be used (it is full, damaged,
// foreign, or its lock is held too long) new shapes travel whole inside their messages, as
// msgpackr writes them without shared structures: slower, never an error.

import * as msgpackrPack from "npm:msgpackr@1.11.5/pack";
import { Packr } from "npm:msgpackr@1.11.5/pack";
import { Unpackr } from "npm:msgpackr@1.11.5/unpack";
import { StructsRead } from "../ffi/abi.ts";
import { core } from "../ffi/lib.ts";
import { Status, StructsStatus } from "../ffi/status.ts";
import { DecodeError } from "./errors.ts";
import { readReport, reportBuffer, type Trust } from "./open.ts";
import { openError } from "./channel/status.ts";

/** First byte of a message that names shared shapes: 0xc1, which msgpack never uses. */
export const TAG = 0xc1;
/** TAG and the store's nonce (u32, little endian). */
export const TAG_BYTES = 5;
/** Entries of a store (core/src/structs CAPACITY): msgpackr's maxSharedStructures. */
const MAX_SHARED = 1024;
/** Bytes of a store's data area at most (core/src/structs DATA_BYTES is a little less). */
const DATA_MAX = 64 * 1024;
/** A shape with more keys travels whole: it would take much of the store for one message type. */
const MAX_SHARED_KEYS = 64;
/** How long an append tries the store's lock; past it the message's new shapes travel whole. */
const APPEND_TIMEOUT_MS = 100;
/** After such a timeout, how long new shapes travel whole before the store is tried again. */
const BUSY_PAUSE_MS = 1000;
/** How long an open waits for another process building the store. */
const OPEN_TIMEOUT_MS = 5000;

/** pack() flag: leave `flag & 0xff` bytes free before the value (exported by pack.js, not its types). */
const RESERVE_START_SPACE = (msgpackrPack as unknown as { RESERVE_START_SPACE: number }).RESERVE_START_SPACE;

/** msgpackr's structure list: shapes by id - 0x40, with the count of shared ones. */
type Structures = string[][] & { sharedLength?: number };
/** The part of msgpackr's Packr this module drives: `_mergeStructures` replaces its shared list. */
type SharingPackr = Packr & { _mergeStructures(loaded: Structures): Structures };

/** Shape entries are plain msgpack arrays of strings. */
const entryPackr = new Packr({ useRecords: false });
const entryUnpackr = new Unpackr({ useRecords: false });

/** One namespace's store as this process sees it: the native handle and the shapes read so far. */
class Store {
  readonly #prefix: Uint8Array;
  readonly #trust: Trust;
  #handle: Deno.PointerObject | null = null;
  /** Why the store cannot be used (then every message travels whole), or undefined. */
  unusable: string | undefined;
  nonce = 0;
  /** Shapes read or written so far, in store order: entry i is shape id 0x40 + i. */
  readonly shapes: string[][] = [];
  /** The store refused an append for room: no new shape is shared any more. */
  full = false;
  /** performance.now() before which no new shape is shared (the append lock was busy). */
  pausedUntil = 0;
  /** Called when the store turned out to be another one than the shapes were read from. */
  replaced: (() => void) | undefined;
  /** Handles that use this store: the native handle is freed when the last one closes. */
  users = 0;
  readonly #data = new Uint8Array(DATA_MAX);
  readonly #lens = new Uint32Array(MAX_SHARED);
  readonly #out = new Uint32Array(StructsRead.LENGTH);

  constructor(prefix: string, trust: Trust) {
    this.#prefix = new TextEncoder().encode(prefix);
    this.#trust = trust;
  }

  /** The native handle, opened on first use; null when the store cannot be used. */
  handle(): Deno.PointerObject | null {
    if (this.#handle !== null || this.unusable !== undefined) return this.#handle;
    const err = reportBuffer();
    const t = this.#trust;
    const h = core().ferry_structs_open(
      this.#prefix,
      this.#prefix.length,
      1,
      t.permissions,
      OPEN_TIMEOUT_MS,
      t.owners,
      t.owners.length,
      err,
    );
    if (h === null) {
      const r = readReport(err);
      this.unusable =
        `the namespace's structure store cannot be opened (status ${r.status}, detail ${r.detail})`;
      return null;
    }
    this.#handle = h;
    this.read();
    return h;
  }

  /** Reads the entries added since the last read; false (and the store unusable) if it is damaged. */
  read(): boolean {
    const h = this.handle();
    if (h === null) return false;
    for (;;) {
      const from = this.shapes.length;
      const st = core().ferry_structs_read(h, from, this.#data, DATA_MAX, this.#lens, MAX_SHARED, this.#out);
      if (st !== Status.OK) return this.#damaged(`reading it gave status ${st}`);
      const nonce = this.#out[StructsRead.NONCE];
      if (nonce !== this.nonce) {
        // Another store than the one read before (it was removed and made again while this
        // process had it closed): what was read from the old one names nothing here.
        this.nonce = nonce;
        this.full = false;
        if (this.shapes.length > 0) {
          this.shapes.length = 0;
          this.replaced?.();
          continue;
        }
      }
      const copied = this.#out[StructsRead.COPIED];
      let at = 0;
      for (let i = 0; i < copied; i++) {
        const len = this.#lens[i];
        let keys: unknown;
        try {
          keys = entryUnpackr.unpack(this.#data, { start: at, end: at + len });
        } catch {
          keys = undefined;
        }
        if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) {
          return this.#damaged(`entry ${from + i} is not a list of keys`);
        }
        this.shapes.push(keys);
        at += len;
      }
      if (copied === 0 || this.shapes.length >= this.#out[StructsRead.COUNT]) return true;
    }
  }

  #damaged(why: string): false {
    this.unusable = `the namespace's structure store is damaged: ${why}`;
    this.close();
    return false;
  }

  /**
   * Appends `fresh` (the shapes after those read so far). OK, CONFLICT (another process appended
   * first), or why not (full, stale, busy, damaged).
   */
  append(fresh: string[][]): number {
    const h = this.handle();
    if (h === null) return Status.ERR_INCOMPATIBLE;
    const parts = fresh.map((keys) => entryPackr.pack(keys).slice());
    const lens = Uint32Array.from(parts, (p) => p.length);
    const bytes = new Uint8Array(lens.reduce((a, b) => a + b, 0));
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    return core().ferry_structs_append(
      h,
      this.nonce,
      this.shapes.length,
      bytes,
      bytes.length,
      lens,
      lens.length,
      APPEND_TIMEOUT_MS,
    );
  }

  /**
   * Frees the native handle; the shapes read so far stay (messages held may still need them), and
   * the next use opens the store again unless it was found unusable.
   */
  close(): void {
    if (this.#handle === null) return;
    core().ferry_structs_free(this.#handle);
    this.#handle = null;
  }
}

/** The msgpack codec of one namespace, shared by every channel handle of this process there. */
export class SharedMsgpack {
  readonly #store: Store;
  readonly #packr: SharingPackr;
  /** For messages that name no shared shape (sent by a plain codec, or while the store is unusable). */
  readonly #plainPackr = new Packr({ moreTypes: true });
  readonly #plainUnpackr = new Unpackr({ moreTypes: true });

  constructor(prefix: string, trust: Trust) {
    const store = new Store(prefix, trust);
    this.#store = store;
    const packr = new Packr({
      moreTypes: true,
      maxSharedStructures: MAX_SHARED,
      getStructures: () => this.#loaded(),
      saveStructures: (structures: Structures) => this.#save(structures),
      shouldShareStructure: (keys: string[]) =>
        !store.full && keys.length <= MAX_SHARED_KEYS && performance.now() >= store.pausedUntil,
    });
    this.#packr = packr as SharingPackr;
    store.replaced = () => this.#packr._mergeStructures([]);
  }

  /** One more channel handle uses this codec. */
  retain(): void {
    this.#store.users++;
  }

  /** A channel handle that used this codec closed: the last one frees the store's handle. */
  release(): void {
    if (--this.#store.users === 0) this.#store.close();
  }

  /** Why this codec encodes every message whole, or undefined when it shares shapes. */
  get unusable(): string | undefined {
    return this.#store.unusable;
  }

  /** The shapes known so far, for msgpackr (a copy: msgpackr keeps and extends the list it gets). */
  #loaded(): Structures {
    this.#store.read();
    return this.#store.shapes.slice();
  }

  /** msgpackr's saveStructures: true once the new shapes are in the store, false to encode again. */
  #save(structures: Structures): boolean {
    const store = this.#store;
    const fresh = structures.slice(store.shapes.length, structures.sharedLength ?? structures.length);
    if (fresh.length === 0) return true;
    const st = store.append(fresh);
    if (st === Status.OK) {
      store.shapes.push(...fresh);
      return true;
    }
    if (st === StructsStatus.ERR_STORE_FULL) store.full = true;
    else if (st === Status.TIMEOUT) store.pausedUntil = performance.now() + BUSY_PAUSE_MS;
    else if (st !== StructsStatus.CONFLICT) store.unusable ??= `appending to it gave status ${st}`;
    // Back to what the store holds (read again after a conflict); msgpackr encodes the value
    // again, naming shapes another process added or, refused, writing new shapes whole.
    store.read();
    this.#packr._mergeStructures(store.shapes.slice());
    return false;
  }

  /** `value` as msgpack: tagged with the store's nonce when its shapes may be shared. */
  encode(value: unknown): Uint8Array {
    const store = this.#store;
    if (typeof value !== "object" || value === null || value instanceof Uint8Array) {
      return this.#plainPackr.pack(value);
    }
    if (store.handle() === null) return this.#plainPackr.pack(value);
    const out = this.#packr.pack(value, RESERVE_START_SPACE | TAG_BYTES);
    const nonce = store.nonce;
    out[0] = TAG;
    out[1] = nonce & 0xff;
    out[2] = (nonce >>> 8) & 0xff;
    out[3] = (nonce >>> 16) & 0xff;
    out[4] = nonce >>> 24;
    return out;
  }

  /** The value of `bytes[start, end)`; msgpackr's own errors are thrown as they are. */
  decode(bytes: Uint8Array, start: number, end: number): unknown {
    if (bytes[start] !== TAG) return this.#plainUnpackr.unpack(bytes, { start, end });
    const nonce = nonceOf(bytes, start);
    const store = this.#store;
    if (store.handle() === null && store.shapes.length === 0) {
      throw new DecodeError(`this message names shared msgpack shapes, and ${store.unusable}`);
    }
    if (nonce !== store.nonce) {
      throw new DecodeError(
        "this message names msgpack shapes of another structure store (it was encoded in another " +
          "namespace, or before this namespace's store was removed): its bytes were moved between " +
          'namespaces raw; send values, or use codec "msgpack-plain" for bytes that travel alone',
      );
    }
    return this.#packr.unpack(bytes, { start: start + TAG_BYTES, end });
  }

  /** `bytes` as one standalone msgpack value (no shared shape), for bytes that leave the namespace. */
  standalone(bytes: Uint8Array): Uint8Array {
    // Bytes of another codec may start with TAG too: only those with this store's nonce are ours.
    if (bytes[0] !== TAG || bytes.length < TAG_BYTES) return bytes;
    if (this.#store.handle() === null || nonceOf(bytes, 0) !== this.#store.nonce) return bytes;
    return this.#plainPackr.pack(this.decode(bytes, 0, bytes.length)).slice();
  }
}

/** The store nonce of a tagged message starting at `start`. */
function nonceOf(bytes: Uint8Array, start: number): number {
  return (bytes[start + 1] | bytes[start + 2] << 8 | bytes[start + 3] << 16 | bytes[start + 4] << 24) >>> 0;
}

const namespaces = new Map<string, SharedMsgpack>();

/** This process's shared msgpack codec of namespace `prefix`, as opened with `trust`. */
/** Removes namespace `prefix`'s store (Namespace.unlinkShapes): false if there was none. */
export function unlinkStore(prefix: string): boolean {
  const bytes = new TextEncoder().encode(prefix);
  const st = core().ferry_structs_unlink(bytes, bytes.length);
  if (st === Status.OK) return true;
  if (st === Status.ERR_NOT_FOUND) return false;
  throw openError({ status: st, detail: 0 }, { prefix, name: "~structures" });
}

export function sharedMsgpack(prefix: string, trust: Trust): SharedMsgpack {
  const key = `${prefix}\0${trust.permissions}\0${trust.owners.join(",")}`;
  let codec = namespaces.get(key);
  if (codec === undefined) {
    codec = new SharedMsgpack(prefix, trust);
    namespaces.set(key, codec);
  }
  return codec;
}
