// The msgpack codec's fidelity: the values a faster codec choice must keep decoding as they were
// sent (Map apart from object, Date, bigint, Set, Uint8Array, nesting), through a real channel.

import assert from "node:assert/strict";
import { Scope } from "./helpers.ts";

const cases: [string, unknown][] = [
  ["a Map stays a Map, an object an object", {
    m: new Map<unknown, unknown>([["a", 1], [2, "b"]]),
    o: { a: 1 },
  }],
  ["a Map with object keys", new Map<unknown, unknown>([[1, { x: 1 }], ["k", new Map([["inner", true]])]])],
  ["an empty Map and an empty object", [new Map(), {}]],
  ["a Date keeps its milliseconds", new Date(1_700_000_000_123)],
  ["bigints past 2^64, negative too", [2n ** 63n - 1n, -(2n ** 63n), 2n ** 100n, -(2n ** 90n)]],
  ["a Set", new Set<unknown>([1, "two", 3n])],
  ["Uint8Array bytes", new Uint8Array([0, 1, 2, 254, 255])],
  [
    "nesting of all of them",
    { list: [new Map([["d", new Date(0)]]), new Set([new Uint8Array([9])])], deep: { deeper: { n: 1n } } },
  ],
  [
    "objects of one shape many times (records reuse)",
    Array.from({ length: 20 }, (_, i) => ({ id: i, s: "x" })),
  ],
  ["objects of different shapes in one message", [{ a: 1 }, { b: 2 }, { a: 1, b: 2 }, { b: 2, a: 1 }]],
];

Deno.test("msgpack round-trips every fidelity case, one message each and in a batch", async () => {
  await using s = new Scope();
  const ch = s.open("fidelity", { mode: "async" });
  for (const [what, value] of cases) {
    ch.sendSync(value);
    assert.deepStrictEqual(ch.recvSync({ timeout: 5_000 }).data, value, what);
  }
  ch.sendManySync(cases.map(([, v]) => v));
  const got = [];
  while (got.length < cases.length) got.push(...ch.recvManySync(64, { timeout: 5_000 }));
  assert.deepStrictEqual(got.map((m) => m.data), cases.map(([, v]) => v));
});

Deno.test("msgpack: a Map and an object with the same entries decode differently", async () => {
  await using s = new Scope();
  const ch = s.open("shapes", { mode: "async" });
  ch.sendSync([new Map([["k", 1]]), { k: 1 }]);
  const [m, o] = ch.recvSync({ timeout: 5_000 }).data as [unknown, unknown];
  assert.ok(m instanceof Map);
  assert.ok(!(o instanceof Map) && typeof o === "object");
});
