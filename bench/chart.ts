// The benchmark as a picture: throughput and round-trip latency per workload and payload, one bar
// per transport at the median over rounds with a whisker from the lowest to the highest round, on
// log scales (the transports differ by orders of magnitude).

import type { Row, Stat, Transport } from "./main.ts";
import { payloadLabel } from "./main.ts";

const COLORS: Record<Transport, string> = {
  ferry: "#2563eb",
  socket: "#ea580c",
  coalesced: "#a3a3a3",
  native: "#16a34a",
  nats: "#9333ea",
};
const NAMES: Record<Transport, string> = {
  ferry: "ferry (TS to TS)",
  socket: "unix socket, per message",
  coalesced: "unix socket, coalesced",
  native: "native core (ceiling)",
  nats: "NATS (local server)",
};

interface Panel {
  title: string;
  unit: string;
  groups: { label: string; bars: { transport: Transport; value: number; min: number; max: number }[] }[];
}

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

function fmt(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(v >= 1e7 ? 0 : 1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v >= 1e4 ? 0 : 1)}k`;
  return v >= 10 ? v.toFixed(0) : v.toFixed(2);
}

function panel(p: Panel, top: number, width: number): { svg: string; height: number } {
  const barH = 11, gap = 10, labelW = 220, plotW = width - labelW - 70;
  const values = p.groups.flatMap((g) => g.bars.flatMap((b) => [b.min, b.max])).filter((v) => v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values))));
  const x = (v: number) =>
    labelW + (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) * plotW;
  const out: string[] = [
    `<text x="10" y="${top + 16}" font-size="15" font-weight="bold">${escape(p.title)}</text>`,
  ];
  const plotTop = top + 34;
  const plotBottom = plotTop + p.groups.reduce((h, g) => h + g.bars.length * barH + gap, 0) - gap;
  for (let d = lo; d <= hi; d *= 10) {
    out.push(`<line x1="${x(d)}" x2="${x(d)}" y1="${plotTop - 6}" y2="${plotBottom}" stroke="#e5e5e5"/>`);
    out.push(
      `<text x="${x(d)}" y="${plotTop - 9}" font-size="10" text-anchor="middle" fill="#666">${fmt(d)}</text>`,
    );
  }
  let y = plotTop;
  for (const g of p.groups) {
    out.push(`<text x="10" y="${y + barH}" font-size="11">${escape(g.label)}</text>`);
    for (const b of g.bars) {
      const w = Math.max(1, x(b.value) - labelW);
      out.push(
        `<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH - 1}" fill="${
          COLORS[b.transport]
        }"/>`,
      );
      // The whisker: the lowest and the highest round.
      const x0 = x(b.min), x1 = x(b.max), mid = y + (barH - 1) / 2;
      out.push(`<line x1="${x0.toFixed(1)}" x2="${x1.toFixed(1)}" y1="${mid}" y2="${mid}" stroke="#111"/>`);
      for (const xe of [x0, x1]) {
        out.push(
          `<line x1="${xe.toFixed(1)}" x2="${xe.toFixed(1)}" y1="${y + 1}" y2="${
            y + barH - 2
          }" stroke="#111"/>`,
        );
      }
      out.push(
        `<text x="${Math.max(labelW + w, x1) + 4}" y="${y + barH - 2}" font-size="9" fill="#333">${
          fmt(b.value)
        }</text>`,
      );
      y += barH;
    }
    y += gap;
  }
  const axisLabel = `${escape(p.unit)} (log scale)`;
  out.push(
    `<text x="${labelW + plotW / 2}" y="${
      plotBottom + 16
    }" font-size="11" text-anchor="middle">${axisLabel}</text>`,
  );
  return { svg: out.join("\n"), height: plotBottom + 26 - top };
}

/** What the chart says about the run it shows: when, how long, on what. */
export interface RunInfo {
  date: string;
  quick: boolean;
  rounds: number;
  cpus: number;
  machine: string;
}

/** The CPU model and kernel, as far as this process may read them. */
export function machineName(): string {
  let cpu = "unknown CPU";
  try {
    const line = Deno.readTextFileSync("/proc/cpuinfo").split("\n").find((l) => l.startsWith("model name"));
    if (line) cpu = line.slice(line.indexOf(":") + 1).trim();
  } catch {
    // not Linux, or no read permission: the rest still says enough
  }
  return `${cpu}, ${Deno.build.os} ${Deno.osRelease()} ${Deno.build.arch}`;
}

export function renderSvg(rows: Row[], run: RunInfo): string {
  const width = 900;
  const label = (r: Row) => {
    const kind = {
      "ack-sync": "ack RTT sync",
      "ack-async": "ack RTT promises",
      "ack-sync-latency": "ack RTT sync, latency option",
      "throughput": "async 1x1",
      "throughput-promise": "async 1x1 promises",
      "throughput-into": "async 1x1 recvSync into",
      "throughput-2x2": "async 2x2",
      "throughput-batch": "async batches 1x1",
      "throughput-zerocopy": "async zero-copy 1x1",
    }[r.kind];
    return `${kind}, ${payloadLabel(r)}`;
  };
  const bars = (pick: (t: Transport) => Stat | undefined) =>
    (Object.keys(NAMES) as Transport[])
      .map((transport) => {
        const s = pick(transport);
        return { transport, value: s?.median ?? 0, min: s?.min ?? 0, max: s?.max ?? 0 };
      })
      .filter((b) => b.value > 0);
  const throughput: Panel = {
    title: "Throughput: messages per second (higher is better)",
    unit: "messages/s",
    groups: rows.filter((r) => r.kind.startsWith("throughput")).map((r) => ({
      label: label(r),
      bars: bars((t) => r.summary[t]?.msgsPerSec),
    })),
  };
  const latency: Panel = {
    title: "Round trip: p50 latency (lower is better)",
    unit: "microseconds",
    groups: rows.filter((r) => r.kind.startsWith("ack")).map((r) => ({
      label: label(r),
      bars: bars((t) => r.summary[t]?.p50us),
    })),
  };
  // The run first, then the legend, where a reader looks before reading any bar.
  const when = `${run.date.replace("T", " ").slice(0, 16)} UTC`;
  const parts: string[] = [
    `<text x="10" y="22" font-size="17" font-weight="bold">ferry benchmark</text>`,
    `<text x="10" y="40" font-size="11" fill="#333">${
      escape(
        `${when} · ${run.quick ? "quick run (--quick)" : "full run"} · median of ${run.rounds} rounds, ` +
          `whiskers min-max · ${run.cpus} CPUs · ${run.machine}`,
      )
    }</text>`,
    ...(Object.keys(NAMES) as Transport[]).map((t, i) =>
      `<rect x="${10 + i * 176}" y="52" width="12" height="12" fill="${COLORS[t]}"/>` +
      `<text x="${28 + i * 176}" y="62" font-size="11">${NAMES[t]}</text>`
    ),
  ];
  let top = 76;
  for (const p of [throughput, latency]) {
    if (p.groups.every((g) => g.bars.length === 0)) continue;
    const { svg, height } = panel(p, top, width);
    parts.push(svg);
    top += height + 10;
  }
  const height = top + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n${parts.join("\n")}\n</svg>\n`;
}
