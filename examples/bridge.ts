// Two "machines" joined through NATS: namespace "east" sends jobs, namespace "west" does them.
//
//   deno run --allow-ffi --allow-run --allow-read --allow-write --allow-net --allow-env examples/bridge.ts
//
// Each side runs a bridge (here both in this process; on real machines, one `cli.ts bridge` each).
// East's producer sends with plain `await jobs.send(...)` in ack mode: it resolves only once west's
// worker released the job. West's worker sends each result back in async mode through JetStream,
// at least once. The example starts its own nats-server (Debian: apt-get install nats-server) on a
// free loopback port, with JetStream storing in a temporary directory, and stops it at the end.

import { Bridge, Channel, Namespace } from "../mod.ts";

const server = await startNats();
try {
  const nats = { servers: server.url };
  // East: its "jobs" channel goes out as NATS requests; "results" comes in from JetStream.
  await using east = await Bridge.start({
    nats,
    prefix: "east",
    out: [{ channel: "jobs", subject: "demo.jobs", mode: "ack" }],
    in: [{ subject: "demo.results", channel: "results", mode: "async" }],
  });
  // West: the reverse.
  await using west = await Bridge.start({
    nats,
    prefix: "west",
    in: [{ subject: "demo.jobs", channel: "jobs", mode: "ack" }],
    out: [{ channel: "results", subject: "demo.results", mode: "async" }],
  });

  // West's worker: the plain channel API; a job is released (east's send resolves) after its body.
  const worker = (async () => {
    using jobs = Channel.open<{ n: number }>("jobs", { prefix: "west" });
    using results = Channel.open<[number, number]>("results", { prefix: "west", mode: "async" });
    for (let done = 0; done < 10; done++) {
      const msg = await jobs.recv({ timeout: 10_000 });
      await results.send([msg.data.n, msg.data.n * msg.data.n]);
    }
  })();

  // East's producer: each send resolves once the worker on the other side released the job.
  using jobs = Channel.open<{ n: number }>("jobs", { prefix: "east" });
  using results = Channel.open<[number, number]>("results", { prefix: "east" });
  for (let n = 1; n <= 10; n++) await jobs.send({ n });
  await worker;
  let sum = 0;
  for (let i = 0; i < 10; i++) sum += (await results.recv({ timeout: 10_000 })).data[1];
  console.log(`10 jobs done across the bridge; sum of squares ${sum}`);
  const out = east.stat().routes[0];
  const back = west.stat().routes.find((r) => r.direction === "out")!;
  console.log(`east's jobs route: forwarded ${out.forwarded}, failed ${out.failed}`);
  console.log(`west's results route: forwarded ${back.forwarded} through JetStream`);
  for (
    const [prefix, name] of [["east", "jobs"], ["east", "results"], ["west", "jobs"], ["west", "results"]]
  ) {
    Channel.unlink(name, { prefix });
  }
  for (const prefix of ["east", "west"]) Namespace.unlinkShapes({ prefix }); // shared msgpack shapes
} finally {
  await server.stop();
}

/** nats-server on PATH, or where Debian puts it (/usr/sbin, not on every user's PATH). */
function natsServerBinary(): string {
  for (const dir of [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/usr/local/sbin"]) {
    if (dir === "") continue;
    try {
      if (Deno.statSync(`${dir}/nats-server`).isFile) return `${dir}/nats-server`;
    } catch {
      // not here
    }
  }
  throw new Error(
    "nats-server is not installed (Debian: apt-get install nats-server); this example starts one",
  );
}

/** nats-server with JetStream on a free loopback port, waited for until it accepts connections. */
async function startNats() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const store = await Deno.makeTempDir({ prefix: "ferry_example_nats_" });
  const process = new Deno.Command(natsServerBinary(), {
    args: ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", store],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`nats-server did not start on port ${port}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      process.kill("SIGTERM");
      await process.status;
      await Deno.remove(store, { recursive: true });
    },
  };
}
