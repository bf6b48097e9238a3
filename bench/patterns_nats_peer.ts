// NATS request/reply for bench/patterns.ts, the baseline a Deno user would reach for with a broker.
// Runs without the repository's config (`deno run -A --no-config`) so that Deno's npm resolver
// fetches the client. Usage: patterns_nats_peer.ts responder|requester <port> <count>
// The requester times `count` requests (after a warm-up) and prints {p50, p99, perSec} (µs, calls/s).

import { connect, JSONCodec } from "npm:nats@2";

const [role, port, countText] = Deno.args;
const count = Number(countText);
const nc = await connect({ servers: `127.0.0.1:${port}` });
const codec = JSONCodec();

if (role === "responder") {
  const sub = nc.subscribe("bench.echo");
  console.log("ready");
  (async () => {
    for await (const m of sub) m.respond(m.data);
  })();
  // Until stdin closes.
  for await (const _ of Deno.stdin.readable) { /* nothing to read */ }
  await nc.close();
} else {
  const payload = codec.encode({ a: 1, b: 2 });
  for (let i = 0; i < Math.min(2000, count); i++) await nc.request("bench.echo", payload, { timeout: 5000 });
  const times = new Float64Array(count);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await nc.request("bench.echo", payload, { timeout: 5000 });
    times[i] = (performance.now() - t) * 1000;
  }
  const total = performance.now() - start;
  times.sort();
  const at = (p: number) => times[Math.min(count - 1, Math.floor(count * p))];
  console.log(JSON.stringify({ p50: at(0.5), p99: at(0.99), perSec: count / (total / 1000) }));
  await nc.close();
}
