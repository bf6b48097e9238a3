// End of input and worker pools between real processes: receivers' loops finish after draining, a
// pool replaces a worker that dies mid-job and drains on shutdown.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type Channel, startPool, workQueue } from "../mod.ts";
import { Scope, within } from "./helpers.ts";

const WORKER = fileURLToPath(new URL("./workers/pool_worker.ts", import.meta.url));

async function collect(
  results: Channel,
  count: number,
): Promise<Map<number, { pid: number; redelivered: boolean }>> {
  const got = new Map<number, { pid: number; redelivered: boolean }>();
  while (got.size < count) {
    const { n, pid, redelivered } = (await within(results.recv({ timeout: Infinity }), `result ${got.size}`))
      .data as { n: number; pid: number; redelivered: boolean };
    got.set(n, { pid, redelivered });
  }
  return got;
}

Deno.test("end(n) finishes the loops of n receivers after they drained the jobs sent before", async () => {
  await using s = new Scope();
  using results = s.open("results", { mode: "async" });
  const workers = [await s.spawn("pool_worker.ts", "jobs"), await s.spawn("pool_worker.ts", "jobs")];
  using jobs = workQueue<{ n: number }>("jobs", { prefix: s.prefix, mode: "async", timeout: 20_000 });
  const sending = (async () => {
    for (let n = 0; n < 40; n++) await jobs.send({ n });
    await jobs.end(2);
  })();
  const got = await collect(results, 40);
  await within(sending, "the jobs and the two ends");
  for (const w of workers) {
    await w.expectLine("drained");
    assert.equal((await within(w.status, "a worker's exit")).code, 0);
  }
  assert.deepEqual([...got.keys()].sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
  assert.equal(results.tryRecv(), undefined);
});

Deno.test("a pool replaces a worker that died mid-job, the job is done by another, and shutdown drains", async () => {
  await using s = new Scope();
  using results = s.open("results", { mode: "async" });
  const pool = startPool({ queue: "jobs", prefix: s.prefix, workers: 3, command: ["run", "-A", WORKER] });
  try {
    for (let n = 0; n < 30; n++) await pool.send({ n, crash: n === 7 }, { timeout: 20_000 });
    const got = await collect(results, 30);
    assert.equal(got.get(7)!.redelivered, true);
    await within(pool.exited(1), "the crashed worker's exit");
    assert.equal(pool.restarts, 1);
    assert.equal(pool.exits.length, 1);
    assert.equal(pool.exits[0].code, 1);
    assert.equal(pool.pids.length, 3);
    const before = pool.pids;
    await within(pool.shutdown(), "the pool's drain");
    assert.deepEqual(pool.exits.slice(1).map((e) => e.code), [0, 0, 0]);
    assert.deepEqual(new Set(pool.exits.slice(1).map((e) => e.pid)), new Set(before));
    assert.equal(pool.pids.length, 0);
  } finally {
    for (const pid of pool.pids) Deno.kill(pid, "SIGKILL");
  }
});

Deno.test("jobs sent before shutdown are all done before the workers exit", async () => {
  await using s = new Scope();
  using results = s.open("results", { mode: "async" });
  const pool = startPool({ queue: "jobs", prefix: s.prefix, workers: 2, command: ["run", "-A", WORKER] });
  for (let n = 0; n < 10; n++) await pool.send({ n });
  const drained = pool.shutdown();
  const got = await collect(results, 10);
  await within(drained, "the drain");
  assert.equal(got.size, 10);
  assert.equal(pool.pids.length, 0);
});
