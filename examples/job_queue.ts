// A job queue with crashing workers: one producer, three worker processes, ack mode.
//
//   deno run --allow-ffi --allow-run --allow-read examples/job_queue.ts
//
// The producer sends 30 jobs with `await send` in ack mode, three at a time (`slots: 3`, one per
// worker: with the default `slots: 1` only one worker would be busy). A send resolves only once a
// worker released the job, after its result was sent back on `results`. Job 7 makes its worker die
// mid-job: that send rejects with PeerDiedError, and the producer starts a new worker and sends the
// job again (the jobs are idempotent).

import { fileURLToPath } from "node:url";
import { Channel, Namespace, PeerDiedError } from "../mod.ts";

interface Job {
  id: number;
  crash?: boolean;
}

const JOBS = 30;

if (Deno.args[0] === "worker") {
  const prefix = Deno.args[1];
  using jobs = Channel.open<Job>("jobs", { prefix });
  using results = Channel.open<[number, number]>("results", { prefix, mode: "async" });
  for await (const msg of jobs) {
    if (msg.data.crash) Deno.exit(1); // dies holding the job: its sender is told, not left waiting
    await results.send([msg.data.id, msg.data.id * msg.data.id]);
    // The job is released when this body ends: the producer's send resolves then.
  }
} else {
  const prefix = `example${Deno.pid}`;
  using jobs = Channel.open<Job>("jobs", { prefix, mode: "ack", slots: 3, timeout: 10_000 });
  using results = Channel.open<[number, number]>("results", { prefix, mode: "async" });
  const workers: Deno.ChildProcess[] = [];
  const startWorker = () =>
    workers.push(
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-ffi", fileURLToPath(import.meta.url), "worker", prefix],
      }).spawn(),
    );
  for (let i = 0; i < 3; i++) startWorker();

  // Results come back while jobs are still being sent.
  const squares = new Map<number, number>();
  const collecting = (async () => {
    for await (const msg of results) {
      squares.set(msg.data[0], msg.data[1]);
      if (squares.size === JOBS) break;
    }
  })();

  let retried = 0;
  const sendJob = async (id: number): Promise<void> => {
    try {
      await jobs.send({ id, crash: id === 7 });
    } catch (e) {
      if (!(e instanceof PeerDiedError)) throw e;
      retried++;
      console.log(`job ${id}: its worker died (${e.code}); starting a new worker and sending it again`);
      startWorker();
      await jobs.send({ id });
    }
  };
  await Promise.all(Array.from({ length: JOBS }, (_, id) => sendJob(id)));
  await collecting;

  const sum = [...squares.values()].reduce((a, b) => a + b, 0);
  console.log(`${squares.size} jobs done, ${retried} retried after a worker died; sum of squares ${sum}`);
  for (const w of workers) {
    try {
      w.kill();
    } catch { /* it exited already */ }
    await w.status;
  }
  Channel.unlink("jobs", { prefix });
  Channel.unlink("results", { prefix });
  Namespace.unlinkShapes({ prefix }); // the store of shared msgpack shapes
}
