// ferry's benchmark suite: every workload and payload through ferry, a Unix-socket baseline doing
// the same work, the Rust core driven natively (the ceiling) and, where nats-server is installed,
// NATS, between real processes, side by side.
//   deno run -A cli.ts bench [--quick] [--rounds N] [--json FILE] [--only ferry,socket,native,nats]
//                            [--filter REGEX] [--latency-option JSON]
// The machine it runs on is usually shared, so one run is not a figure: the whole plan runs in
// `rounds` rounds (5, or 3 with --quick); within a round every row runs each of its transports
// once, in an order that rotates from round to round (no transport always goes first, after a
// quiet spell, or last, after a busy one); every driver sends untimed warm-up messages first.
// Tables, goals and the chart give the median over rounds and the range (min-max). Writes FILE
// (default bench/out/results.json) with every round's figures, and an SVG chart next to it.

import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { cleanUpFerry, runFerry } from "./ferry.ts";
import { runNative } from "./native.ts";
import { natsMissing, runNats, stopNats } from "./nats.ts";
import { runUnixSocket } from "./unix_socket.ts";
import { machineName, renderSvg } from "./chart.ts";
import { stampCostUs } from "./clock.ts";
import { goalReport, goals } from "./goals.ts";
import { type PayloadCodec, type Result, skipped, type Workload, type WorkloadKind } from "./types.ts";

export type Transport = "ferry" | "socket" | "coalesced" | "native" | "nats";
export const TRANSPORTS: Transport[] = ["ferry", "socket", "coalesced", "native", "nats"];

/**
 * The channel option of issue 10's latency goal, passed to every ferry handle of the
 * "ack-sync-latency" row: `spin: "busy"` spins until the deadline instead of parking (a core per
 * waiting side: for dedicated cores). `--latency-option '{"spin": ...}'` overrides.
 */
export const LATENCY_OPTION: Record<string, unknown> | undefined = { spin: "busy" };

/** Median and range over rounds of one figure. */
export interface Stat {
  median: number;
  min: number;
  max: number;
}

export interface Summary {
  /** Rounds that measured something. */
  n: number;
  note?: string;
  msgsPerSec: Stat;
  mbPerSec: Stat;
  p50us?: Stat;
  p99us?: Stat;
  p999us?: Stat;
  meanUs?: Stat;
}

export interface Row {
  kind: WorkloadKind;
  codec: PayloadCodec;
  size: number;
  count: number;
  warm: number;
  /** Every round's figures, per transport, in round order. */
  rounds: Partial<Record<Transport, Result>>[];
  /** Median and range per transport over `rounds`. */
  summary: Partial<Record<Transport, Summary>>;
}

type Plan = Omit<Row, "rounds" | "summary">;

const KiB = 1024;
export const MiB = 1024 * 1024;

function plan(quick: boolean, latencyOption: boolean): Plan[] {
  const scale = (n: number) => Math.max(100, Math.round(quick ? n / 10 : n));
  const row = (kind: WorkloadKind, codec: PayloadCodec, size: number, n: number): Plan => {
    const count = scale(n);
    return { kind, codec, size, count, warm: Math.max(10, Math.round(count / 10)) };
  };
  const payloads: [PayloadCodec, number, number, number][] = [
    // codec, size, round trips, throughput messages
    ["raw", 64, 50_000, 1_000_000],
    ["raw", KiB, 50_000, 500_000],
    ["raw", 64 * KiB, 5_000, 20_000],
    ["raw", MiB, 300, 2_000],
    ["msgpack", 0, 50_000, 300_000],
  ];
  const rows: Plan[] = [];
  for (const kind of ["ack-sync", "ack-async"] as const) {
    for (const [codec, size, trips] of payloads) rows.push(row(kind, codec, size, trips));
  }
  if (latencyOption) rows.push(row("ack-sync-latency", "raw", 64, 50_000));
  for (const [codec, size, , msgs] of payloads) rows.push(row("throughput", codec, size, msgs));
  // The same small object, every message standalone: what sharing shapes gains, in the same run.
  rows.push(row("throughput", "msgpack-plain", 0, 300_000));
  rows.push(row("throughput-into", "raw", 64 * KiB, 20_000));
  rows.push(row("throughput-into", "raw", MiB, 2_000));
  rows.push(row("throughput-promise", "raw", 64, 300_000));
  rows.push(row("throughput-promise", "msgpack", 0, 100_000));
  rows.push(row("throughput-zerocopy", "raw", 64 * KiB, 20_000));
  rows.push(row("throughput-zerocopy", "raw", MiB, 2_000));
  rows.push(row("throughput-batch", "raw", 64, 2_000_000));
  rows.push(row("throughput-batch", "msgpack", 0, 300_000));
  rows.push(row("throughput-2x2", "raw", 64, 500_000));
  rows.push(row("throughput-2x2", "msgpack", 0, 150_000));
  return rows;
}

export function payloadLabel(r: { codec: PayloadCodec; size: number }): string {
  if (r.codec === "msgpack") return "msgpack obj";
  if (r.codec === "msgpack-plain") return "msgpack plain";
  return r.size >= MiB ? `${r.size / MiB} MiB` : r.size >= KiB ? `${r.size / KiB} KiB` : `${r.size} B`;
}

const isLatency = (k: WorkloadKind) => k.startsWith("ack-");

type Driver = [Transport, (w: Workload) => Promise<Result>];

function drivers(p: Plan, only: Set<string>): Driver[] {
  // The batch row's native figure is the core's own batch calls (the ceiling sendManySync and
  // recvManySync approach); the zero-copy rows' is the core's one-at-a-time copying throughput.
  // The batch row's socket is the socket's own batching.
  const unbatched = (w: Workload): Workload => ({ ...w, kind: "throughput" });
  const k = p.kind;
  const list: Driver[] = [["ferry", runFerry]];
  // The standalone codec's row compares ferry with itself (the msgpack row has the baselines).
  if (p.codec === "msgpack-plain") return only.has("ferry") ? list : [];
  const socketRow = k === "ack-sync" || k === "ack-async" || k === "throughput" || k === "throughput-2x2";
  if (socketRow) list.push(["socket", (w) => runUnixSocket(w, "per-message")]);
  if (k === "throughput" || k === "throughput-2x2" || k === "throughput-batch") {
    list.push(["coalesced", (w) => runUnixSocket(unbatched(w), "coalesced")]);
  }
  const nativeRow = k === "ack-sync" || k === "throughput" || k === "throughput-2x2" ||
    k === "throughput-batch";
  if (nativeRow) list.push(["native", runNative]);
  if (k === "throughput-zerocopy" || k === "throughput-into") {
    list.push(["native", (w) => runNative(unbatched(w))]);
  }
  const nats64 = p.codec === "raw" && p.size === 64 && (k === "ack-async" || k === "throughput");
  if (nats64) list.push(["nats", runNats]);
  return list.filter(([t]) => only.has(t === "coalesced" ? "socket" : t));
}

function progress(text: string) {
  if (Deno.stderr.isTerminal()) {
    Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[K${text}`));
  } else {
    console.error(text);
  }
}

// ---- statistics ----

function stat(xs: number[]): Stat | undefined {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = s.length;
  const median = m % 2 ? s[(m - 1) / 2] : (s[m / 2 - 1] + s[m / 2]) / 2;
  return { median, min: s[0], max: s[m - 1] };
}

/** Median and range of every figure, each over the rounds independently. */
export function summarise(rounds: Partial<Record<Transport, Result>>[]): Partial<Record<Transport, Summary>> {
  const out: Partial<Record<Transport, Summary>> = {};
  for (const t of TRANSPORTS) {
    const rs = rounds.map((r) => r[t]).filter((r): r is Result => r !== undefined);
    if (rs.length === 0) continue;
    const ok = rs.filter((r) => Number.isFinite(r.msgsPerSec));
    const msgs = stat(ok.map((r) => r.msgsPerSec));
    if (!msgs) {
      out[t] = { n: 0, note: rs[0].note, msgsPerSec: nan(), mbPerSec: nan() };
      continue;
    }
    const pick = (f: keyof Result) =>
      ok[0][f] === undefined ? undefined : stat(ok.map((r) => r[f] as number));
    out[t] = {
      n: ok.length,
      msgsPerSec: msgs,
      mbPerSec: stat(ok.map((r) => r.mbPerSec))!,
      p50us: pick("p50us"),
      p99us: pick("p99us"),
      p999us: pick("p999us"),
      meanUs: pick("meanUs"),
    };
  }
  return out;
}

const nan = (): Stat => ({ median: NaN, min: NaN, max: NaN });

// ---- formatting ----

export const fmtRate = (n: number) =>
  !Number.isFinite(n)
    ? "-"
    : n >= 1e6
    ? `${(n / 1e6).toFixed(2)}M`
    : n >= 1e3
    ? `${(n / 1e3).toFixed(0)}k`
    : n.toFixed(0);
export const fmtUs = (n: number) => !Number.isFinite(n) ? "-" : n < 10 ? n.toFixed(2) : n.toFixed(1);
export const fmtGB = (n: number) => !Number.isFinite(n) ? "-" : (n / 1000).toFixed(2);
const fmtRatio = (n?: number) => n === undefined || !Number.isFinite(n) ? "-" : `${n.toFixed(2)}x`;
/** "median (min-max)" */
const ranged = (s: Stat | undefined, f: (n: number) => string) =>
  !s || !Number.isFinite(s.median)
    ? "-"
    : s.min === s.max
    ? f(s.median)
    : `${f(s.median)} (${f(s.min)}-${f(s.max)})`;

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

const KIND_LABEL: Record<WorkloadKind, string> = {
  "ack-sync": "ack round trip, sync API",
  "ack-async": "ack round trip, promises",
  "ack-sync-latency": "ack round trip, sync, latency option",
  "throughput": "async 1x1, sync API",
  "throughput-promise": "async 1x1, promises",
  "throughput-into": "async 1x1, recvSync({ into }) reused buffer",
  "throughput-2x2": "async 2x2, sync API",
  "throughput-zerocopy": "async zero-copy 1x1 (loan.set/commit, view)",
  "throughput-batch": "async batches 1x1 (sendManySync/recvManySync)",
};

/** Per-round ratio a/b of one figure, paired within each round (the two ran minutes apart at most). */
export function pairedRatio(
  a: Row | undefined,
  b: Row | undefined,
  t: Transport,
  f: (r: Result) => number,
  tb: Transport = t,
): Stat | undefined {
  if (!a || !b) return undefined;
  const xs: number[] = [];
  for (let i = 0; i < Math.min(a.rounds.length, b.rounds.length); i++) {
    const x = a.rounds[i][t], y = b.rounds[i][tb];
    if (x && y) xs.push(f(x) / f(y));
  }
  return stat(xs);
}

export function report(rows: Row[]): string {
  const lat = rows.filter((r) => isLatency(r.kind)).map((r) => {
    const f = r.summary.ferry, s = r.summary.socket, n = r.summary.native, q = r.summary.nats;
    return [
      KIND_LABEL[r.kind],
      payloadLabel(r),
      ranged(f?.p50us, fmtUs),
      f ? `${fmtUs(f.p99us?.median ?? NaN)} / ${fmtUs(f.p999us?.median ?? NaN)}` : "-",
      ranged(f?.meanUs, fmtUs),
      s ? ranged(s.p50us, fmtUs) : "-",
      n ? ranged(n.p50us, fmtUs) : "-",
      q ? q.note ?? ranged(q.p50us, fmtUs) : "-",
      fmtRatio(pairedRatio(r, r, "socket", (x) => x.p50us!, "ferry")?.median),
    ];
  });
  const thr = rows.filter((r) => !isLatency(r.kind)).map((r) => {
    const cell = (t: Transport) => {
      const x = r.summary[t];
      if (!x) return "-";
      if (x.note) return x.note;
      // Payload GB/s where it says more than messages/s: from 64 KiB up.
      return r.size >= 64 * KiB ? `${ranged(x.mbPerSec, fmtGB)} GB/s` : ranged(x.msgsPerSec, fmtRate);
    };
    const vs = r.summary.socket ? "socket" : "coalesced";
    return [
      KIND_LABEL[r.kind],
      payloadLabel(r),
      cell("ferry"),
      cell("socket"),
      cell("coalesced"),
      cell("native"),
      cell("nats"),
      fmtRatio(pairedRatio(r, r, "ferry", (x) => x.msgsPerSec, vs)?.median),
      fmtRatio(pairedRatio(r, r, "ferry", (x) => x.msgsPerSec, "native")?.median),
    ];
  });
  return [
    "Latency, microseconds: median over rounds (min-max). p50 and the mean with ranges, p99 / p99.9 medians.",
    "socket/ferry: how many times lower ferry's p50 is, median of the per-round ratios.",
    table(
      [
        "workload",
        "payload",
        "ferry p50",
        "ferry p99 / p99.9",
        "ferry mean",
        "unix socket p50",
        "native p50",
        "nats p50",
        "socket/ferry",
      ],
      lat,
    ),
    "",
    "Throughput, messages/s (payload GB/s from 64 KiB up): median over rounds (min-max); ratios of messages/s, median of per-round",
    "ratios. The coalesced socket is context, except on the batch rows, where ferry/socket compares ferry's batch",
    "API with it; native on the batch row is the core's batch calls, on the zero-copy rows its one-at-a-time copying.",
    table(
      [
        "workload",
        "payload",
        "ferry",
        "unix socket",
        "socket coalesced",
        "native",
        "nats",
        "ferry/socket",
        "ferry/native",
      ],
      thr,
    ),
  ].join("\n");
}

/** The machine's load while the bench ran: 1-minute load averages sampled between rounds. */
function loadAverage(): number | undefined {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return undefined;
  }
}

export async function runBench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      json: { type: "string" },
      only: { type: "string", default: "ferry,socket,native,nats" },
      filter: { type: "string" },
      "latency-option": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "Usage: cli.ts bench [--quick] [--rounds N] [--json FILE] [--only ferry,socket,native,nats] [--filter REGEX]\n" +
        "Runs ferry against a Unix-socket baseline, the native core and NATS (when nats-server is installed),\n" +
        "between real processes, in rounds that alternate the transports; reports median and range per row.\n" +
        "--quick           a tenth of the messages and 3 rounds (a few minutes) instead of 5\n" +
        "--rounds N        rounds to run (default 5, or 3 with --quick)\n" +
        "--filter REGEX    only rows whose '<kind> <payload>' matches, e.g. 'throughput 1 MiB'\n" +
        "--latency-option  JSON Channel.open options for the latency row, e.g. '{\"spin\": 100000}'\n" +
        "--json            where to write every round's figures (default bench/out/results.json); an SVG chart goes next to it",
    );
    return;
  }
  const only = new Set(values.only!.split(","));
  const rounds = values.rounds ? Number(values.rounds) : values.quick ? 3 : 5;
  const latencyOption = values["latency-option"] ? JSON.parse(values["latency-option"]) : LATENCY_OPTION;
  const jsonPath = values.json ?? fileURLToPath(new URL("./out/results.json", import.meta.url));
  const svgPath = jsonPath.replace(/\.json$/, "") + ".svg";
  const filter = values.filter ? new RegExp(values.filter) : undefined;
  const plans = plan(values.quick!, latencyOption !== undefined)
    .filter((p) => !filter || filter.test(`${p.kind} ${payloadLabel(p)}`));
  const rows: Row[] = plans.map((p) => ({ ...p, rounds: [], summary: {} }));
  const steps = rounds * plans.reduce((n, p) => n + drivers(p, only).length, 0);
  const notes = new Set<string>();
  const missing = only.has("nats") ? natsMissing() : undefined;
  if (missing) notes.add(missing);
  const loads: number[] = [];
  let step = 0;
  const started = performance.now();
  try {
    for (let round = 0; round < rounds; round++) {
      const load = loadAverage();
      if (load !== undefined) loads.push(load);
      for (const row of rows) {
        const ds = drivers(row, only);
        const results: Partial<Record<Transport, Result>> = {};
        for (let i = 0; i < ds.length; i++) {
          // Rotate the order each round: every transport runs first in some round.
          const [transport, run] = ds[(i + round) % ds.length];
          step++;
          progress(
            `[${step}/${steps}] round ${round + 1}/${rounds} ${row.kind} ${payloadLabel(row)}: ${transport}`,
          );
          try {
            results[transport] = await run({
              kind: row.kind,
              codec: row.codec,
              size: row.size,
              count: row.count,
              warm: row.warm,
              openExtra: row.kind === "ack-sync-latency" ? latencyOption : undefined,
            });
          } catch (e) {
            // One failed measurement (a peer killed on a crowded machine) costs that figure, not
            // the run: the row's median is over the rounds that measured.
            const note = `${transport} ${row.kind} ${payloadLabel(row)} round ${round + 1} failed: ${
              e instanceof Error ? e.message : e
            }`;
            notes.add(note);
            results[transport] = skipped(note);
          }
        }
        row.rounds.push(results);
      }
    }
  } finally {
    await stopNats();
    cleanUpFerry();
  }
  const load = loadAverage();
  if (load !== undefined) loads.push(load);
  for (const row of rows) row.summary = summarise(row.rounds);
  const seconds = (performance.now() - started) / 1000;
  progress(`done in ${seconds.toFixed(1)} s\n`);
  const stamp = stampCostUs();
  const gs = goals(rows);
  const loadText = loads.length
    ? `${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`
    : "unknown";
  console.log(
    `${rounds} rounds, transports alternating; ${navigator.hardwareConcurrency} CPUs, 1-minute load average ` +
      `${loadText} during the run. One performance.now() costs ${
        stamp.toFixed(3)
      } µs here: every ferry p50/p99 ` +
      "sample carries one (the mean is timed over whole batches without).",
  );
  for (const n of notes) console.log(`note: ${n}`);
  console.log("");
  console.log(report(rows));
  console.log("");
  console.log(goalReport(gs));
  await Deno.mkdir(dirname(jsonPath), { recursive: true });
  const meta = {
    date: new Date().toISOString(),
    quick: values.quick!,
    rounds,
    cpus: navigator.hardwareConcurrency,
    machine: machineName(),
    loadAverages: loads,
    stampCostUs: stamp,
    notes: [...notes],
  };
  await Deno.writeTextFile(jsonPath, JSON.stringify({ ...meta, goals: gs, rows }, null, 2));
  await Deno.writeTextFile(svgPath, renderSvg(rows, meta));
  console.log(`\nevery round's figures: ${jsonPath}\nchart (medians, min-max whiskers): ${svgPath}`);
}

if (import.meta.main) await runBench(Deno.args);
