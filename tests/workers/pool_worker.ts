// A worker of the pool tests: takes jobs from a work queue until its input ends, reports each on the
// channel "results" and prints "drained" when its loop finished. A job { crash: true } kills the
// worker the first time it is delivered. Started by a Pool (queue and prefix in FERRY_POOL_QUEUE and
// FERRY_POOL_PREFIX) or by the tests' Scope (arguments <prefix> <queue>; then it prints "ready").

import { Channel, workQueue } from "../../mod.ts";

const [prefix, queue] = Deno.args.length >= 2
  ? Deno.args
  : [Deno.env.get("FERRY_POOL_PREFIX")!, Deno.env.get("FERRY_POOL_QUEUE")!];
using jobs = workQueue<{ n: number; crash?: boolean }>(queue, { prefix });
using results = Channel.open("results", { prefix, mode: "async", timeout: Infinity });
if (Deno.args.length >= 2) console.log("ready");
for await (const job of jobs) {
  if (job.data.crash && !job.redelivered) Deno.exit(1); // dies holding the job
  await results.send({ n: job.data.n, pid: Deno.pid, redelivered: job.redelivered });
}
console.log("drained");
