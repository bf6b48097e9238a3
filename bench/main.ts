// ferry's benchmark suite: every workload and payload through ferry, a Unix-socket baseline doing
// the same work, and the Rust core driven natively (the ceiling), in one run, side by side.
//   deno run -A cli.ts bench [--quick] [--json FILE] [--only ferry,socket,native]
// Writes FILE (default bench/out/results.json) and an SVG chart next to it.

import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runFerry } from "./ferry.ts";
import { runNative } from "./native.ts";
import { runUnixSocket } from "./unix_socket.ts";
import { machineName, renderSvg } from "./chart.ts";
import type { PayloadCodec, Result, Workload, WorkloadKind } from "./types.ts";

export type Transport = "ferry" | "socket" | "coalesced" | "native";

export interface Row {
  kind: WorkloadKind;
  codec: PayloadCodec;
  size: number;
  count: number;
  results: Partial<Record<Transport, Result>>;
}

interface Plan {
  kind: WorkloadKind;
  codec: PayloadCodec;
  size: number;
  count: number;
}

const KiB = 1024, MiB = 1024 * 1024;

function plan(quick: boolean): Plan[] {
  const scale = (n: number) => Math.max(quick ? 100 : n, Math.round(quick ? n / 10 : n));
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
    for (const [codec, size, trips] of payloads) rows.push({ kind, codec, size, count: scale(trips) });
  }
  for (const [codec, size, , msgs] of payloads) {
    rows.push({ kind: "throughput", codec, size, count: scale(msgs) });
  }
  rows.push({ kind: "throughput-zerocopy", codec: "raw", size: 64 * KiB, count: scale(20_000) });
  rows.push({ kind: "throughput-zerocopy", codec: "raw", size: MiB, count: scale(2_000) });
  rows.push({ kind: "throughput-batch", codec: "raw", size: 64, count: scale(2_000_000) });
  rows.push({ kind: "throughput-batch", codec: "msgpack", size: 0, count: scale(300_000) });
  rows.push({ kind: "throughput-2x2", codec: "raw", size: 64, count: scale(500_000) });
  rows.push({ kind: "throughput-2x2", codec: "msgpack", size: 0, count: scale(150_000) });
  return rows;
}

export function payloadLabel(r: { codec: PayloadCodec; size: number }): string {
  if (r.codec === "msgpack") return "msgpack obj";
  return r.size >= MiB ? `${r.size / MiB} MiB` : r.size >= KiB ? `${r.size / KiB} KiB` : `${r.size} B`;
}

const isLatency = (k: WorkloadKind) => k === "ack-sync" || k === "ack-async";

function drivers(kind: WorkloadKind, only: Set<string>): [Transport, (w: Workload) => Promise<Result>][] {
  // The batch row compares ferry's batch API with the socket's own batching (coalesced writes);
  // the native ceiling there is its one-at-a-time throughput.
  const unbatched = (w: Workload): Workload => ({ ...w, kind: "throughput" });
  const list: [Transport, (w: Workload) => Promise<Result>][] = [["ferry", runFerry]];
  if (kind === "throughput-zerocopy") {
    // Zero-copy against ferry's own copying path (the 1x1 rows): the comparison the row is for.
    return [["ferry", runFerry], ["native", (w) => runNative(unbatched(w))]];
  }
  if (kind !== "throughput-batch") list.push(["socket", (w) => runUnixSocket(w, "per-message")]);
  if (!isLatency(kind)) list.push(["coalesced", (w) => runUnixSocket(unbatched(w), "coalesced")]);
  if (kind !== "ack-async") {
    list.push(["native", (w) => runNative(kind === "throughput-batch" ? unbatched(w) : w)]);
  }
  return list.filter(([t]) => only.has(t === "coalesced" ? "socket" : t));
}

function progress(text: string) {
  if (Deno.stderr.isTerminal()) {
    Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[K${text}`));
  } else {
    console.error(text);
  }
}

const fmtRate = (n?: number) =>
  n === undefined
    ? "-"
    : n >= 1e6
    ? `${(n / 1e6).toFixed(2)} M`
    : n >= 1e3
    ? `${(n / 1e3).toFixed(1)} k`
    : n.toFixed(0);
const fmtUs = (n?: number) => n === undefined ? "-" : n < 10 ? n.toFixed(2) : n.toFixed(1);
const fmtRatio = (n?: number) => n === undefined || !Number.isFinite(n) ? "-" : `${n.toFixed(2)}x`;

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function report(rows: Row[]): string {
  const lat = rows.filter((r) => isLatency(r.kind)).map((r) => {
    const f = r.results.ferry, s = r.results.socket, n = r.results.native;
    return [
      r.kind === "ack-sync" ? "ack round trip, sync API" : "ack round trip, promises",
      payloadLabel(r),
      `${fmtUs(f?.p50us)} / ${fmtUs(f?.p99us)} / ${fmtUs(f?.p999us)}`,
      `${fmtUs(s?.p50us)} / ${fmtUs(s?.p99us)}`,
      n ? `${fmtUs(n.p50us)} / ${fmtUs(n.p99us)}` : "-",
      fmtRatio(s?.p50us !== undefined && f?.p50us ? s.p50us / f.p50us : undefined),
      fmtRatio(n?.p50us !== undefined && f?.p50us ? n.p50us / f.p50us : undefined),
    ];
  });
  const thr = rows.filter((r) => !isLatency(r.kind)).map((r) => {
    const f = r.results.ferry, s = r.results.socket, c = r.results.coalesced, n = r.results.native;
    const both = (x?: Result) =>
      x ? `${fmtRate(x.msgsPerSec)}/s ${(x.mbPerSec / 1000).toFixed(2)} GB/s` : "-";
    return [
      {
        "throughput": "async throughput 1x1",
        "throughput-2x2": "async throughput 2x2",
        "throughput-zerocopy": "async zero-copy 1x1 (loan/commit, view)",
      }[r.kind as string] ?? "async batches 1x1 (sendManySync/recvManySync)",
      payloadLabel(r),
      both(f),
      both(s),
      both(c),
      both(n),
      fmtRatio(f && (s ?? c) ? f.msgsPerSec / (s ?? c)!.msgsPerSec : undefined),
      fmtRatio(f && n ? f.msgsPerSec / n.msgsPerSec : undefined),
    ];
  });
  return [
    "Latency, microseconds (p50 / p99 / p99.9 for ferry, p50 / p99 for the others); ratios: how many times lower ferry's p50 is",
    table(["workload", "payload", "ferry", "unix socket", "native", "socket/ferry", "native/ferry"], lat),
    "",
    "Throughput, messages/s and payload GB/s; ratios of messages/s. The coalesced socket is context, except on the",
    "batch rows, where ferry/socket compares ferry's batch API with it; native there is one message at a time.",
    table(
      [
        "workload",
        "payload",
        "ferry",
        "unix socket",
        "socket coalesced",
        "native",
        "ferry/socket",
        "ferry/native",
      ],
      thr,
    ),
  ].join("\n");
}

export async function runBench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      json: { type: "string" },
      only: { type: "string", default: "ferry,socket,native" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "Usage: cli.ts bench [--quick] [--json FILE] [--only ferry,socket,native]\n" +
        "Runs ferry against a Unix-socket baseline and the native core, between real processes.\n" +
        "--quick  a run under 30 s (a tenth of the messages)\n" +
        "--json   where to write the raw figures (default bench/out/results.json); an SVG chart goes next to it",
    );
    return;
  }
  const only = new Set(values.only!.split(","));
  const jsonPath = values.json ?? fileURLToPath(new URL("./out/results.json", import.meta.url));
  const svgPath = jsonPath.replace(/\.json$/, "") + ".svg";
  const plans = plan(values.quick!);
  const steps = plans.reduce((n, p) => n + drivers(p.kind, only).length, 0);
  const rows: Row[] = [];
  let step = 0;
  const started = performance.now();
  for (const p of plans) {
    const row: Row = { ...p, results: {} };
    for (const [transport, run] of drivers(p.kind, only)) {
      step++;
      progress(`[${step}/${steps}] ${p.kind} ${payloadLabel(p)} x${p.count}: ${transport}`);
      row.results[transport] = await run({ kind: p.kind, codec: p.codec, size: p.size, count: p.count });
    }
    rows.push(row);
  }
  progress(`done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  console.log(report(rows));
  await Deno.mkdir(dirname(jsonPath), { recursive: true });
  const meta = {
    date: new Date().toISOString(),
    quick: values.quick!,
    cpus: navigator.hardwareConcurrency,
    machine: machineName(),
  };
  await Deno.writeTextFile(jsonPath, JSON.stringify({ ...meta, rows }, null, 2));
  await Deno.writeTextFile(svgPath, renderSvg(rows, meta));
  console.log(`\nraw figures: ${jsonPath}\nchart: ${svgPath}`);
}

if (import.meta.main) await runBench(Deno.args);
