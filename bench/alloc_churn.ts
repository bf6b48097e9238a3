// What the payload allocator costs when message sizes mix (core/src/channel/alloc.rs), between two
// real processes: a sender (sendSync, async mode, 16 slots) and a receiver (recvSync), raw codec.
// Workloads: 1 MiB messages alone, and 1 MiB alternating with 64 B. Per large message it reports
// the page faults of both processes (minflt from /proc/self/stat: a count, so the machine's load
// does not move it) and the time, per round, then the median and range over the rounds.
//
//   deno run -A bench/alloc_churn.ts [rounds=5] [pairs=300] [--lib A.so --lib B.so ...]
//
// Each `--lib` is a build of the core (FERRY_LIB for both peers), so an old build and a new one are
// compared in one run, alternating round by round; without `--lib` the repository's build runs.
// Numbers here are for reading, on a shared machine: never for a test's assertion.

import { parseArgs } from "node:util";
import { Channel } from "../mod.ts";
import { Peer } from "./proc.ts";

const LARGE = 1 << 20;
const SMALL = 64;
/** Large messages sent before the measured ones, so the slots reach their steady state. */
const WARMUP = 64;

/** This process's minor page faults so far (field 10 of /proc/self/stat). */
function minflt(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
}

/** The sizes a sender sends for `pairs` large messages. */
function sizes(workload: string, pairs: number): number[] {
  const one = workload === "mixed" ? [LARGE, SMALL] : [LARGE];
  return Array.from({ length: WARMUP + pairs }, () => one).flat();
}

const [role, prefix, name, workload, pairsArg] = Deno.args;

if (role === "--send" || role === "--recv") {
  const ch = Channel.open<Uint8Array>(name, { prefix, codec: "raw", mode: "async", timeout: 60_000 });
  const plan = sizes(workload, Number(pairsArg));
  const warm = plan.length - Number(pairsArg) * (workload === "mixed" ? 2 : 1);
  const large = new Uint8Array(LARGE).fill(7);
  const small = new Uint8Array(SMALL).fill(7);
  // The receiver copies into one buffer of its own, so its faults are the shared pages', not V8's.
  const frame = new Uint8Array(LARGE);
  let faults = 0;
  let start = 0;
  if (role === "--recv") console.log("ready");
  for (let i = 0; i < plan.length; i++) {
    if (i === warm) [faults, start] = [minflt(), performance.now()];
    if (role === "--send") ch.sendSync(plan[i] === LARGE ? large : small);
    else if (ch.recvSync({ into: frame }).data.length !== plan[i]) {
      throw new Error(`message ${i}: wrong size`);
    }
  }
  const ms = performance.now() - start;
  console.log(JSON.stringify({ faults: minflt() - faults, ms }));
  ch.close();
  Deno.exit(0);
}

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { lib: { type: "string", multiple: true } },
  allowPositionals: true,
});
const rounds = Number(positionals[0] ?? 5);
const pairs = Number(positionals[1] ?? 300);
const libs = values.lib ?? [""];

/** A peer of `role` on channel `ch` of prefix `pfx`, loading the core `lib` (the repository's if ""). */
function peer(role: string, pfx: string, ch: string, w: string, lib: string): Peer {
  return new Peer(new URL(import.meta.url), [role, pfx, ch, w, String(pairs)], lib ? { FERRY_LIB: lib } : {});
}

interface Row {
  senderFaults: number;
  receiverFaults: number;
  usPerLarge: number;
}

async function round(workload: string, lib: string, n: number): Promise<Row> {
  const pfx = `churn${Deno.pid}x${n}`;
  const recv = peer("--recv", pfx, "c", workload, lib);
  await recv.expect("ready");
  const send = peer("--send", pfx, "c", workload, lib);
  const s = JSON.parse(await send.line());
  const r = JSON.parse(await recv.line());
  await Promise.all([send.stop(), recv.stop()]);
  try {
    Deno.removeSync(`/dev/shm/${pfx}.c`);
  } catch { /* removed by its last user */ }
  return {
    senderFaults: s.faults / pairs,
    receiverFaults: r.faults / pairs,
    usPerLarge: (Math.max(s.ms, r.ms) * 1000) / pairs,
  };
}

const results = new Map<string, Row[]>();
let n = 0;
for (let r = 0; r < rounds; r++) {
  for (const lib of libs) {
    for (const workload of ["alone", "mixed"]) {
      const key = `${lib || "repository build"} | ${workload}`;
      const row = await round(workload, lib, n++);
      (results.get(key) ?? results.set(key, []).get(key)!).push(row);
      console.log(
        `round ${r + 1} ${key}: faults ${row.senderFaults.toFixed(1)} sender, ${
          row.receiverFaults.toFixed(1)
        } receiver, ${row.usPerLarge.toFixed(0)} us per 1 MiB`,
      );
    }
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const range = (xs: number[], digits: number) =>
  `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`;
console.log(`\nper 1 MiB message (mixed: with its 64 B neighbour), ${rounds} rounds, median [range]`);
for (const [key, rows] of results) {
  const fs = rows.map((x) => x.senderFaults);
  const fr = rows.map((x) => x.receiverFaults);
  const t = rows.map((x) => x.usPerLarge);
  console.log(
    `${key.padEnd(48)} faults sender ${median(fs).toFixed(1).padStart(6)} [${range(fs, 1)}]` +
      `  receiver ${median(fr).toFixed(1).padStart(6)} [${range(fr, 1)}]` +
      `  us ${median(t).toFixed(0).padStart(5)} [${range(t, 0)}]`,
  );
}
