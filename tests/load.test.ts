// Many messages between several processes: exactly-once delivery and per-sender order under contention.

import assert from "node:assert/strict";
import { Scope } from "./helpers.ts";

const PER_SENDER = 100_000;
const LOAD_STEP_MS = 120_000; // hang guard for a whole phase, far above what it takes

Deno.test("2 senders x 2 receivers, 100k messages each: every message received exactly once, in order", async () => {
  await using s = new Scope();
  s.open("load", { mode: "async" }); // created here so every child attaches to the same settings
  const dir = await s.tempDir();

  const receivers = await Promise.all([0, 1].map((r) => s.spawn("load_receiver.ts", "load", `${dir}/r${r}`)));
  const senders = await Promise.all([0, 1].map((tag) => s.spawn("load_sender.ts", "load", tag, PER_SENDER)));
  await Promise.all(senders.map((sender) => sender.tell("go")));
  for (const sender of senders) await sender.expectLine(`done ${PER_SENDER}`, LOAD_STEP_MS);

  // Every message is written now; receivers stop at the first empty recv after this.
  await Promise.all(receivers.map((receiver) => receiver.tell("drain")));
  const reports = await Promise.all(receivers.map(async (receiver) => {
    const report = JSON.parse(await receiver.line("a report", LOAD_STEP_MS));
    const status = await receiver.status;
    assert.equal(status.code, 0, `receiver ${receiver.pid} failed`);
    return report as { received: number; seqViolations: number; senders: Record<string, number[]> };
  }));

  for (const [r, report] of reports.entries()) {
    assert.equal(report.seqViolations, 0, `receiver ${r} saw msg.seq go backwards`);
    for (const [tag, pids] of Object.entries(report.senders)) {
      assert.deepEqual(pids, [senders[Number(tag)].pid], `receiver ${r}: msg.sender of sender ${tag}`);
    }
  }
  assert.equal(reports[0].received + reports[1].received, 2 * PER_SENDER);

  for (const tag of [0, 1]) {
    const timesSeen = new Uint8Array(PER_SENDER);
    for (const r of [0, 1]) {
      const ids = await readIds(`${dir}/r${r}.${tag}`);
      for (let k = 0; k < ids.length; k++) {
        assert.ok(ids[k] < PER_SENDER, `receiver ${r} got unknown id ${ids[k]} from sender ${tag}`);
        if (k > 0) assert.ok(ids[k] > ids[k - 1], `receiver ${r}: sender ${tag} out of order at ${ids[k]}`);
        timesSeen[ids[k]]++;
      }
    }
    const missing = timesSeen.findIndex((n) => n === 0);
    const duplicated = timesSeen.findIndex((n) => n > 1);
    assert.equal(missing, -1, `sender ${tag}: message ${missing} never received`);
    assert.equal(duplicated, -1, `sender ${tag}: message ${duplicated} received more than once`);
  }
});

async function readIds(path: string): Promise<Uint32Array> {
  try {
    const bytes = await Deno.readFile(path);
    return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return new Uint32Array(0); // that receiver got none of them
    throw error;
  }
}
