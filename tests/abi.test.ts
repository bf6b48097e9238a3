// One source for each number the core and the binding share: the Rust files are the source, the
// TypeScript in ffi/ is a copy, and these tests read the Rust and fail when a copy drifts. The Rust
// keeps such numbers as `pub const NAME: type = literal;` lines (in `pub mod` blocks for the
// out-array indexes), which is all these tests parse.

import assert from "node:assert/strict";
import * as abi from "../ffi/abi.ts";
import * as status from "../ffi/status.ts";

type Consts = Map<string, number>;

function rust(file: string): string {
  return Deno.readTextFileSync(new URL(`../core/src/${file}`, import.meta.url));
}

function number(literal: string): number {
  const text = literal.replaceAll("_", "");
  return text.startsWith("-") ? -Number(text.slice(1)) : Number(text);
}

function consts(text: string): Consts {
  return new Map(
    [...text.matchAll(/^\s*pub const (\w+): \w+ = (-?(?:0x)?[0-9a-fA-F_]+);/gm)].map((
      m,
    ) => [m[1], number(m[2])]),
  );
}

/** The consts outside any `pub mod` block, and each block's consts by module name. */
function parse(text: string): { top: Consts; modules: Map<string, Consts> } {
  const modules = new Map<string, Consts>();
  const top = text.replace(/^pub mod (\w+) \{([^}]*)\}/gm, (_, name: string, body: string) => {
    modules.set(name, consts(body));
    return "";
  });
  return { top: consts(top), modules };
}

/** `recv_meta` -> `RecvMeta`: the TS name of a Rust module. */
function pascal(snake: string): string {
  return snake.split("_").map((w) => w[0].toUpperCase() + w.slice(1)).join("");
}

function pick(c: Consts, test: (name: string) => boolean, strip = ""): Record<string, number> {
  return Object.fromEntries([...c].filter(([k]) => test(k)).map(([k, v]) => [k.slice(strip.length), v]));
}

Deno.test("status codes: ffi/status.ts is core/src/status.rs, reasons and group outcomes included", () => {
  const { top, modules } = parse(rust("status.rs"));
  assert.deepEqual(pick(top, (k) => !/^(WHY|FOREIGN)_/.test(k)), { ...status.Status });
  assert.deepEqual(
    Object.keys(status.IncompatibleReason).map(Number).sort(),
    Object.values(pick(top, (k) => k.startsWith("WHY_"))).sort(),
    "one message per WHY_ reason, and none for a retired one",
  );
  assert.deepEqual(pick(top, (k) => k.startsWith("FOREIGN_"), "FOREIGN_"), { ...status.ForeignReason });
  assert.deepEqual(Object.fromEntries(modules.get("group")!), { ...status.GroupStatus });
  assert.deepEqual(Object.fromEntries(modules.get("structs")!), { ...status.StructsStatus });
});

Deno.test("call flags: every constant of core/src/ffi/abi.rs has its copy in ffi/status.ts", () => {
  const { top } = parse(rust("ffi/abi.rs"));
  assert.ok(top.size > 10, "the flags were found");
  const exported = status as unknown as Record<string, unknown>;
  for (const [name, value] of top) assert.equal(exported[name], value, name);
});

Deno.test("out-array indexes: each module of core/src/ffi/abi.rs is the object of the same name in ffi/abi.ts", () => {
  const { modules } = parse(rust("ffi/abi.rs"));
  const exported = abi as unknown as Record<string, Record<string, number>>;
  for (const [name, fields] of modules) {
    assert.deepEqual({ ...exported[pascal(name)] }, Object.fromEntries(fields), `${name} / ${pascal(name)}`);
  }
  const copies = Object.keys(abi).filter((k) => k !== "WaitPolicy" && k !== "Layout").sort();
  assert.deepEqual(copies, [...modules.keys()].map(pascal).sort(), "no index table without its Rust source");
});

Deno.test("message meta: a batch entry's fields up to FLAGS sit where a single receive's do", () => {
  // src/channel/receive.ts messageOf reads both through RecvMeta's names.
  for (const field of ["SLOT", "GENERATION", "LEN", "PID", "SEQ_LO", "SEQ_HI", "FLAGS"] as const) {
    assert.equal(abi.BatchMeta[field], abi.RecvMeta[field], field);
  }
});

Deno.test("wait policy: ffi/abi.ts WaitPolicy is the binding's share of core/src/wait.rs", () => {
  const { top } = parse(rust("wait.rs"));
  assert.deepEqual({ ...abi.WaitPolicy }, {
    SPIN_ATTEMPTS: top.get("JS_SPIN_ATTEMPTS"),
    PARK_SLICE_MS: top.get("PARK_SLICE_MS"),
    ADAPTIVE_MAX_US: top.get("JS_ADAPTIVE_MAX_US"),
    WOKEN_SPIN_US: top.get("JS_WOKEN_SPIN_US"),
    SPIN_SLICE_US: top.get("JS_SPIN_SLICE_US"),
    SPIN_POLITE: top.get("SPIN_POLITE"),
    SPIN_BUSY: top.get("SPIN_BUSY"),
    SPIN_MAX_US: top.get("SPIN_MAX_US"),
  });
});

Deno.test("layout numbers: ffi/abi.ts Layout is what core/src/layout.rs says", () => {
  const { top } = parse(rust("layout.rs"));
  for (const [name, value] of Object.entries(abi.Layout)) assert.equal(value, top.get(name), name);
});
