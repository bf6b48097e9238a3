// The goals of issue 10 (the engine's roadmap), judged on a run's medians: each is printed as met or
// not, with the median and range over rounds it was judged on.

import { fmtGB, fmtRate, fmtUs, MiB, pairedRatio, type Row, type Stat } from "./main.ts";
import type { PayloadCodec, WorkloadKind } from "./types.ts";

export interface Goal {
  goal: string;
  met: boolean | undefined;
  /** What it is judged on: the median and range over rounds. */
  judged: string;
}

export function goals(rows: Row[]): Goal[] {
  const find = (kind: WorkloadKind, codec: PayloadCodec, size: number) =>
    rows.find((r) => r.kind === kind && r.codec === codec && (codec === "msgpack" || r.size === size));
  const out: Goal[] = [];
  const judge = (
    goal: string,
    s: Stat | undefined,
    ok: (x: number) => boolean,
    f: (n: number) => string,
    why = "",
  ) => {
    out.push(
      s && Number.isFinite(s.median)
        ? { goal, met: ok(s.median), judged: `median ${f(s.median)} (range ${f(s.min)}-${f(s.max)})` }
        : { goal, met: undefined, judged: why || "not measured in this run" },
    );
  };
  const us = (n: number) => `${fmtUs(n)} µs`;
  const x = (n: number) => `${n.toFixed(2)}x`;
  const gb = (n: number) => `${fmtGB(n)} GB/s`;
  const rate = (n: number) => `${fmtRate(n)} msg/s`;
  const rtt = find("ack-async", "raw", 64)?.summary.ferry;
  judge("promise round trip p50 < 3 µs (64 B)", rtt?.p50us, (v) => v < 3, us);
  judge("promise round trip mean < 5 µs (64 B)", rtt?.meanUs, (v) => v < 5, us);
  judge(
    "promise throughput >= 60% of sync (64 B, per-round ratio)",
    pairedRatio(
      find("throughput-promise", "raw", 64),
      find("throughput", "raw", 64),
      "ferry",
      (r) => r.msgsPerSec,
    ),
    (v) => v >= 0.6,
    x,
  );
  judge(
    "sync round trip p99 < 2 µs with the latency option (64 B)",
    find("ack-sync-latency", "raw", 64)?.summary.ferry?.p99us,
    (v) => v < 2,
    us,
    "not measured: the channel has no latency option yet (set LATENCY_OPTION in bench/main.ts or pass --latency-option)",
  );
  judge(
    "1 MiB copying >= 8 GB/s, recvSync({ into }) (the copy lands in a reused buffer)",
    find("throughput-into", "raw", MiB)?.summary.ferry?.mbPerSec,
    (v) => v >= 8000,
    gb,
  );
  judge(
    "1 MiB copying >= 8 GB/s, default recvSync (a fresh buffer per message)",
    find("throughput", "raw", MiB)?.summary.ferry?.mbPerSec,
    (v) => v >= 8000,
    gb,
  );
  judge(
    "1 MiB zero-copy >= 12 GB/s",
    find("throughput-zerocopy", "raw", MiB)?.summary.ferry?.mbPerSec,
    (v) => v >= 12000,
    gb,
  );
  judge(
    "msgpack small object >= 1.5 M msg/s (sync API)",
    find("throughput", "msgpack", 0)?.summary.ferry?.msgsPerSec,
    (v) => v >= 1.5e6,
    rate,
  );
  judge(
    "batches >= 2x single-message throughput (64 B, per-round ratio)",
    pairedRatio(
      find("throughput-batch", "raw", 64),
      find("throughput", "raw", 64),
      "ferry",
      (r) => r.msgsPerSec,
    ),
    (v) => v >= 2,
    x,
  );
  return out;
}

export function goalReport(gs: Goal[]): string {
  return [
    "Goals of issue 10 (judged on the median over rounds; the range shows how far one run can stray):",
    ...gs.map((g) => `  [${g.met === undefined ? " - " : g.met ? "met" : "NOT"}] ${g.goal}: ${g.judged}`),
  ].join("\n");
}
