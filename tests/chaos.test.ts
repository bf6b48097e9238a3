// The short version of the chaos suite (tests/chaos.ts), run by `deno task test`: one crash round of
// each kind and a few seconds of soak, every invariant checked. `deno task chaos` runs the long one.
// FERRY_CHAOS_SEED replays a run; the seed is in every failure message.

import assert from "node:assert/strict";
import { Channel } from "../mod.ts";
import { buildFaultLibrary, describe, runChaos } from "./chaos.ts";
import { Scope, within } from "./helpers.ts";

const ROUNDS = 7; // one of each situation: random, holding, parked, blocked, recovery, opening, create

Deno.test("chaos (short): processes killed at random and at chosen points lose nothing, tear nothing, hang nothing", async () => {
  const faultLib = await buildFaultLibrary();
  const seed = Number(Deno.env.get("FERRY_CHAOS_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  // Rounds, not time, end this run: the budget only guards a machine so loaded that the seven
  // rounds (about 10 s when quiet) cannot all run, which the assertion below then reports.
  const figures = await within(
    runChaos({ seconds: 100, soakSeconds: 4, seed, faultLib, maxRounds: ROUNDS }),
    `the short chaos run (seed ${seed})`,
    150_000,
  );
  const summary = describe(figures);
  console.log(summary);
  assert.deepEqual(figures.violations, [], summary);
  assert.equal(figures.rounds, ROUNDS, "the time budget ran out before every kind of round ran");
  assert.ok(figures.processesKilled >= ROUNDS, summary);
  assert.equal(figures.soak?.lost, 0);
});

// A regression test for a failure the chaos run found (src/channel.ts, not the core): ack-mode sends
// that had to wait for room read their slot from the handle's shared out-array after an await,
// where another send that got room in the same wake-up has overwritten it.
Deno.test("concurrent ack sends that waited for room each get their own outcome (a chaos run once found them crossed)", async () => {
  await using s = new Scope();
  const tx = s.open("acks", { mode: "ack", slots: 4, capacity: 2 });
  const rx = s.open("acks", { mode: "async", autoRelease: false });
  const outcome: Record<string, string> = {};
  const sends = ["a", "b", "c", "d"].map((v) =>
    tx.send(v, { timeout: 10_000 }).then(() => outcome[v] = "ok", (e) => outcome[v] = e.code)
  );
  // a and b fit; c and d wait for room and both get it when a and b are released.
  for (const v of ["a", "b"]) {
    const m = await rx.recv({ timeout: 5_000 });
    assert.equal(m.data, v);
    m.release();
  }
  const c = await rx.recv({ timeout: 5_000 });
  const d = await rx.recv({ timeout: 5_000 });
  assert.deepEqual([c.data, d.data], ["c", "d"]);
  d.release();
  await within(sends[3], "d's send after d was released");
  assert.equal(outcome.c, undefined, "c's send settled while c was still held unreleased");
  assert.equal(outcome.d, "ok");
  c.release();
  await within(Promise.all(sends), "every send");
  assert.deepEqual(outcome, { a: "ok", b: "ok", c: "ok", d: "ok" });
  assert.equal(Channel.stat("acks", { prefix: s.prefix }).inFlight, 0, "a slot was left ACKED");
});
