// Where a wait's time goes, between two real processes: ack-mode round trips and async-mode
// throughput of 64 B raw messages, promise API (`await send` / `for await`) against the sync API,
// in alternating rounds. Prints per round p50, mean, p99, p99.9 and msg/s, then the median and range
// of each figure over the rounds, and the wait counters of the promise side (wait.ts waitStats).
//
//   deno run -A bench/wait_probe.ts [rounds=5] [count=20000] [spin=polite|busy|<us>]
//
// Numbers here are for reading, on a shared machine: never for a test's assertion.

import { fileURLToPath } from "node:url";
import { Channel } from "../mod.ts";
import { waitStats } from "../src/channel/wait.ts";

type Spin = "polite" | "busy" | number;
const spinOf = (s: string | undefined): Spin =>
  s === undefined || s === "polite" || s === "busy" ? (s ?? "polite") as Spin : Number(s);

const [role, prefix, name, _count, spinArg] = Deno.args;

if (role === "echo-promise" || role === "echo-sync" || role === "drain-promise" || role === "drain-sync") {
  // The peer: receives until an empty message, then prints its wait counters.
  const spin = spinOf(spinArg);
  const ch = Channel.open<Uint8Array>(name, {
    prefix,
    codec: "raw",
    mode: role.startsWith("drain") ? "async" : "ack",
    timeout: 60_000,
    spin,
  });
  console.log("ready");
  if (role.endsWith("promise")) {
    for await (const msg of ch) if (msg.data.length === 0) break;
  } else {
    for (;;) if (ch.recvSync().data.length === 0) break;
  }
  console.log(JSON.stringify(waitStats));
  ch.close();
  Deno.exit(0);
}

const rounds = Number(Deno.args[0] ?? 5);
const count = Number(Deno.args[1] ?? 20_000);
const spin = spinOf(Deno.args[2]);
const self = fileURLToPath(import.meta.url);
const payload = new Uint8Array(64);

async function peer(kind: string, pfx: string, ch: string) {
  const p = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", self, kind, pfx, ch, String(count), String(spin)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const line = async () => {
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return l;
      }
      const { value, done } = await lines.read();
      if (done) throw new Error("peer ended");
      buf += value;
    }
  };
  if (await line() !== "ready") throw new Error("peer not ready");
  return { p, line };
}

function pct(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

interface Row {
  p50: number;
  mean: number;
  p99: number;
  p999: number;
  rate: number;
  peerParks?: number;
  parks?: number;
  spins?: number;
  peerSpins?: number;
  woken?: string;
  peerWoken?: string;
  usPerPark?: number;
  peerUsPerPark?: number;
}

async function roundTrip(api: "promise" | "sync", round: number): Promise<Row> {
  const pfx = `probe${Deno.pid}r${round}${api}`;
  const ch = Channel.open<Uint8Array>("rt", {
    prefix: pfx,
    codec: "raw",
    mode: "ack",
    timeout: 60_000,
    spin,
  });
  const { p, line } = await peer(api === "promise" ? "echo-promise" : "echo-sync", pfx, "rt");
  const lat = new Float64Array(count);
  const warm = Math.min(2000, count / 10);
  const before = { ...waitStats };
  let t0 = 0;
  for (let i = -warm; i < count; i++) {
    if (i === 0) t0 = performance.now();
    const t = performance.now();
    if (api === "promise") await ch.send(payload);
    else ch.sendSync(payload);
    if (i >= 0) lat[i] = (performance.now() - t) * 1000;
  }
  const elapsed = performance.now() - t0;
  ch.sendSync(new Uint8Array(0));
  const peerStats = JSON.parse(await line());
  await p.status;
  ch.close();
  Channel.unlink("rt", { prefix: pfx });
  lat.sort();
  let sum = 0;
  for (const v of lat) sum += v;
  return {
    p50: pct(lat, 0.5),
    mean: sum / count,
    p99: pct(lat, 0.99),
    p999: pct(lat, 0.999),
    rate: count / elapsed * 1000,
    parks: waitStats.parks - before.parks,
    peerParks: peerStats.parks,
    spins: waitStats.spins - before.spins,
    peerSpins: peerStats.spins,
    woken: `${waitStats.woken - before.woken}-${waitStats.wokenMissed - before.wokenMissed}`,
    peerWoken: `${peerStats.woken}-${peerStats.wokenMissed}`,
  };
}

async function throughput(api: "promise" | "sync", round: number): Promise<Row> {
  const pfx = `probe${Deno.pid}t${round}${api}`;
  const ch = Channel.open<Uint8Array>("tp", {
    prefix: pfx,
    codec: "raw",
    mode: "async",
    timeout: 60_000,
    spin,
  });
  const { p, line } = await peer(api === "promise" ? "drain-promise" : "drain-sync", pfx, "tp");
  const n = count * 10;
  const before = { ...waitStats };
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    if (api === "promise") await ch.send(payload);
    else ch.sendSync(payload);
  }
  ch.sendSync(new Uint8Array(0));
  const peerStats = JSON.parse(await line());
  const elapsed = performance.now() - t0;
  await p.status;
  ch.close();
  Channel.unlink("tp", { prefix: pfx });
  return {
    p50: NaN,
    mean: NaN,
    p99: NaN,
    p999: NaN,
    rate: n / elapsed * 1000,
    parks: waitStats.parks - before.parks,
    peerParks: peerStats.parks,
    spins: waitStats.spins - before.spins,
    peerSpins: peerStats.spins,
    woken: `${waitStats.woken - before.woken}-${waitStats.wokenMissed - before.wokenMissed}`,
    peerWoken: `${peerStats.woken}-${peerStats.wokenMissed}`,
    usPerPark: (waitStats.parkedUs - before.parkedUs) / (waitStats.parks - before.parks),
    peerUsPerPark: peerStats.parkedUs / peerStats.parks,
  };
}

const results: Record<string, Row[]> = {};
for (let r = 0; r < rounds; r++) {
  // Alternate the order each round so neither API always runs first on a warmer machine.
  const order: ("promise" | "sync")[] = r % 2 === 0 ? ["promise", "sync"] : ["sync", "promise"];
  for (const api of order) {
    const rt = await roundTrip(api, r);
    const tp = await throughput(api, r);
    (results[`rt ${api}`] ??= []).push(rt);
    (results[`tput ${api}`] ??= []).push(tp);
    console.log(
      `round ${r} ${api.padEnd(7)} rt p50 ${rt.p50.toFixed(2)} mean ${rt.mean.toFixed(2)} p99 ${
        rt.p99.toFixed(2)
      } p99.9 ${
        rt.p999.toFixed(2)
      } us (parks ${rt.parks}/${rt.peerParks} woken ${rt.woken}/${rt.peerWoken} spins ${rt.spins}/${rt.peerSpins})  tput ${
        (tp.rate / 1e6).toFixed(2)
      } M msg/s (parks ${tp.parks}/${tp.peerParks}, spins ${tp.spins}/${tp.peerSpins}, woken ${tp.woken}/${tp.peerWoken}, us/park ${
        tp.usPerPark?.toFixed(0)
      }/${tp.peerUsPerPark?.toFixed(0)})`,
    );
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
console.log(
  `\nmedian [range] over ${rounds} rounds, ${count} round trips / ${count * 10} messages, spin ${spin}`,
);
for (const api of ["promise", "sync"]) {
  const rt = results[`rt ${api}`];
  const tp = results[`tput ${api}`];
  const f = (k: keyof Row) => {
    const xs = rt.map((x) => x[k] as number);
    return `${median(xs).toFixed(2)} [${range(xs)}]`;
  };
  const rates = tp.map((x) => x.rate / 1e6);
  console.log(
    `${api.padEnd(7)} rt us: p50 ${f("p50")} mean ${f("mean")} p99 ${f("p99")} p99.9 ${f("p999")}; ` +
      `tput M msg/s ${median(rates).toFixed(2)} [${range(rates)}]`,
  );
}
const ratio = results["tput promise"].map((x, i) => x.rate / results["tput sync"][i].rate);
console.log(`promise/sync throughput: ${median(ratio).toFixed(2)} [${range(ratio)}]`);
