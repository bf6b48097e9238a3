// How values become bytes: msgpack (msgpackr) with shapes shared through the namespace
// (structures.ts), msgpack whose every message stands alone, raw Uint8Array, or the caller's own codec.

// The "pack" and "unpack" entry points, not the package root: the root's Node entry reads
// MSGPACKR_NATIVE_ACCELERATION_DISABLED from the environment when loaded, which would make
// `--allow-env` a requirement of every ferry program. These are msgpackr's pure-JS encoder and
// decoder (measured: 0.88 against 0.80 us per small-object decode with the native string extractor).
import { addExtension, Packr } from "npm:msgpackr@1.11.5/pack";
import { Unpackr } from "npm:msgpackr@1.11.5/unpack";
import { DecodeError, EncodeError, InvalidOptionError } from "./errors.ts";
import type { Trust } from "./open.ts";
import { type SharedMsgpack, sharedMsgpack } from "./structures.ts";

export interface Codec<T = unknown> {
  encode(value: T): Uint8Array;
  /** Decodes `bytes[start, end)`. */
  decode(bytes: Uint8Array, start: number, end: number): T;
  /** The namespace's shared msgpack, when this codec is it: for retain/release and standalone bytes. */
  readonly shared?: SharedMsgpack;
}

/** Where a channel's codec is used: the namespace whose structure store "msgpack" shares shapes through. */
export interface CodecScope {
  prefix: string;
  trust: Trust;
}

/**
 * How a channel turns values into bytes: `"msgpack"` (the default: objects, arrays, strings,
 * numbers, bigint, Uint8Array, Date, Map; object shapes are shared through the namespace, so an
 * object's bytes name its keys by id and decode only in that namespace), `"msgpack-plain"` (the
 * same values, each message standalone msgpack that any msgpackr reads, about half as fast for
 * small objects), `"raw"` (Uint8Array payloads as they are; needed for loans and zeroCopy), or
 * your own `{ encode, decode }`.
 */
export type CodecOption<T> = "msgpack" | "msgpack-plain" | "raw" | {
  /** The bytes of `value`; throw to refuse it (nothing is written). */
  encode(value: T): Uint8Array;
  /** The value of `bytes` (a copy the message owns). */
  decode(bytes: Uint8Array): T;
};

// msgpackr silently writes functions as nil; refusing them keeps "unencodable input is an error".
let functionsRefused = false;
function refuseFunctions() {
  if (functionsRefused) return;
  functionsRefused = true;
  addExtension({
    Class: Function,
    type: 0x7f,
    write() {
      throw new TypeError("functions cannot be sent");
    },
    read: () => undefined,
  });
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** msgpack through `packr`/`unpackr` (or the namespace's `shared` codec), its errors typed. */
function msgpack<T>(
  packr: { pack(value: unknown): Uint8Array },
  unpackr: { unpack(bytes: Uint8Array, options: { start: number; end: number }): unknown },
  shared?: SharedMsgpack,
): Codec<T> {
  refuseFunctions();
  return {
    shared,
    encode(value) {
      try {
        return packr.pack(value);
      } catch (e) {
        throw new EncodeError(`cannot encode this value as msgpack: ${describe(e)}`, { cause: e });
      }
    },
    decode(bytes, start, end) {
      try {
        return unpackr.unpack(bytes, { start, end }) as T;
      } catch (e) {
        if (e instanceof DecodeError) throw e;
        throw new DecodeError(`received bytes are not valid msgpack: ${describe(e)}`, { cause: e });
      }
    },
  };
}

/** msgpack whose every message stands alone (its record shapes inside it). */
function plainMsgpack<T>(): Codec<T> {
  // Records (msgpackr's default) keep Map and plain objects apart; moreTypes adds Set, Error, etc.
  return msgpack(new Packr({ moreTypes: true }), new Unpackr({ moreTypes: true }));
}

/**
 * @internal Standard msgpack, for values that leave ferry (the bridge's values on NATS): what any
 * msgpack library reads and writes. Objects and Maps are maps (no record extension; a Map arrives
 * as an object), maps decode to plain objects (string, number or boolean keys, as property names),
 * Uint8Array (any typed array, ArrayBuffer, DataView) is bin, Date the timestamp extension (-1),
 * (an invalid one nil), bigint int64 or uint64 (decoded back as bigint, as any int64 or uint64 is;
 * one beyond 64 bits is an EncodeError), undefined nil (an object's undefined properties are left out), Set an array, Error `[name, message, cause]`.
 * A top-level undefined is zero bytes, and zero bytes decode to undefined (a call without arguments,
 * a handler that returns nothing).
 */
export function standardMsgpack(): Codec<unknown> {
  // skipValues takes msgpackr's variable-size map writer: the smallest map header (fixmap for up
  // to 15 keys), as other libraries write it.
  // An invalid Date is nil: msgpackr's own mark for it is a timestamp no other library reads.
  const packr = new Packr({
    useRecords: false,
    encodeUndefinedAsNil: true,
    // msgpackr 1.11 reads skipValues, its typings do not list it yet.
    ...{ skipValues: [undefined] },
    onInvalidDate: () => null,
  });
  const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
  const inner = msgpack<unknown>(packr, unpackr);
  const NONE = new Uint8Array(0);
  return {
    encode: (value) => value === undefined ? NONE : inner.encode(value),
    decode: (bytes, start, end) => end === start ? undefined : inner.decode(bytes, start, end),
  };
}

/** The namespace's msgpack, shapes shared through its structure store (structures.ts). */
function namespaceMsgpack<T>(scope: CodecScope): Codec<T> {
  const shared = sharedMsgpack(scope.prefix, scope.trust);
  return msgpack(
    { pack: (value) => shared.encode(value) },
    { unpack: (bytes, { start, end }) => shared.decode(bytes, start, end) },
    shared,
  );
}

const raw: Codec<Uint8Array> = {
  encode(value) {
    if (!(value instanceof Uint8Array)) {
      throw new EncodeError(`the raw codec sends Uint8Array values, not ${typeof value}`);
    }
    return value;
  },
  // A view built from the buffer directly: measured 30% cheaper than subarray in this Deno.
  decode: (bytes, start, end) => new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start),
};

/**
 * The codec `option` names. "msgpack" shares shapes through the namespace of `scope`; without a
 * scope (values that travel outside a channel's namespace) it is "msgpack-plain".
 */
export function makeCodec<T>(option: CodecOption<T> | undefined, scope?: CodecScope): Codec<T> {
  if (option === undefined || option === "msgpack") {
    return scope === undefined ? plainMsgpack<T>() : namespaceMsgpack<T>(scope);
  }
  if (option === "msgpack-plain") return plainMsgpack<T>();
  if (option === "raw") return raw as unknown as Codec<T>;
  if (
    typeof option === "object" && typeof option.encode === "function" && typeof option.decode === "function"
  ) {
    const custom = option;
    return {
      encode(value) {
        let out: unknown;
        try {
          out = custom.encode(value);
        } catch (e) {
          throw new EncodeError(`the custom codec could not encode this value: ${describe(e)}`, { cause: e });
        }
        if (!(out instanceof Uint8Array)) {
          throw new EncodeError("the custom codec's encode must return a Uint8Array");
        }
        return out;
      },
      decode(bytes, start, end) {
        try {
          return custom.decode(bytes.subarray(start, end));
        } catch (e) {
          throw new DecodeError(`the custom codec could not decode a message: ${describe(e)}`, { cause: e });
        }
      },
    };
  }
  throw new InvalidOptionError(
    'codec must be "msgpack", "msgpack-plain", "raw" or an object with encode and decode',
  );
}
