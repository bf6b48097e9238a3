// A pool of three worker processes on a work queue: one worker dies mid-job, the pool replaces it,
// and shutdown lets the workers finish the queue before they exit.
//
//   deno run --allow-ffi --allow-run --allow-read --allow-env examples/pool.ts
//
// Jobs go in async mode: the one whose worker died is delivered again (marked redelivered) to
// another worker. Results come back on the channel "results".

import { fileURLToPath } from "node:url";
import { Channel, Namespace, startPool, workQueue } from "../mod.ts";

if (Deno.args[0] === "worker") {
  const prefix = Deno.env.get("FERRY_POOL_PREFIX")!;
  using jobs = workQueue<{ n: number }>(Deno.env.get("FERRY_POOL_QUEUE")!, { prefix });
  using results = Channel.open<[number, boolean]>("results", { prefix, mode: "async" });
  for await (const job of jobs) {
    if (job.data.n === 7 && !job.redelivered) Deno.exit(1); // dies holding job 7
    await results.send([job.data.n * job.data.n, job.redelivered]);
  }
  // Input ended: the loop finished after the queue drained.
} else {
  const prefix = `example${Deno.pid}`;
  using results = Channel.open<[number, boolean]>("results", { prefix, mode: "async" });
  const pool = startPool({
    queue: "jobs",
    prefix,
    workers: 3,
    command: ["run", "--allow-ffi", "--allow-env", fileURLToPath(import.meta.url), "worker"],
  });
  for (let n = 0; n < 20; n++) await pool.send({ n });
  let sum = 0, redelivered = 0;
  for (let i = 0; i < 20; i++) {
    const [square, again] = (await results.recv()).data;
    sum += square;
    if (again) redelivered++;
  }
  await pool.shutdown();
  console.log(
    `20 jobs done, sum of squares ${sum}; ${redelivered} redelivered, ${pool.restarts} worker restarted`,
  );
  console.log(`workers exited: ${pool.exits.map((e) => e.code).join(" ")}`);
  Channel.unlink("jobs", { prefix });
  Channel.unlink("results", { prefix });
  Namespace.unlinkShapes({ prefix }); // the store of shared msgpack shapes
}
