// Everything the CLI writes: stdout lines that survive a closed pipe, the one stderr line of an
// error, JSON for values JSON cannot carry, and the human formats (sizes, times, tables).

import { type ChannelStat, FerryError } from "../mod.ts";
import { OutputClosed } from "./errors.ts";

const encoder = new TextEncoder();

function writeAll(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
  const bytes = encoder.encode(text);
  let done = 0;
  try {
    while (done < bytes.length) done += stream.writeSync(bytes.subarray(done));
  } catch (error) {
    if (stream === Deno.stdout && error instanceof Deno.errors.BrokenPipe) throw new OutputClosed();
    throw error;
  }
}

/** One line on stdout, written synchronously: a message is released only once its line is out. */
export function print(line = ""): void {
  writeAll(Deno.stdout, `${line}\n`);
}

/** The `ferry: <message>` line on stderr. */
export function printError(message: string): void {
  try {
    writeAll(Deno.stderr, `ferry: ${message}\n`);
  } catch {
    // nowhere left to report it
  }
}

/** JSON for values msgpack can carry and JSON cannot: bigint, bytes, Map, Set, Error, undefined. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") {
    return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  }
  if (value instanceof Uint8Array) return Array.from(value);
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), v]));
  if (value instanceof Set) return [...value];
  if (value instanceof FerryError) return { name: value.name, code: value.code, message: value.message };
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, jsonReplacer, indent) ?? "null";
}

export function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

export function formatTime(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ` +
    `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`;
}

export function formatAge(date: Date): string {
  const s = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h ago`;
}

export function formatParticipants(stat: ChannelStat): string {
  if (stat.participants.length === 0) return "-";
  return stat.participants.map((p) => p.alive ? `${p.pid}` : `${p.pid}(dead)`).join(" ");
}

/** Columns left-aligned, or right-aligned where `right[i]`; two spaces between. */
export function table(header: string[], rows: string[][], right: boolean[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line)];
}

/** A stat as JSON: the ChannelStat fields, createdAt as an ISO string. */
export function statJson(stat: ChannelStat): Record<string, unknown> {
  return { ...stat, createdAt: stat.createdAt.toISOString() };
}

/** What a channel that is not built is, in words (stat and rm). */
export function unbuiltText(s: ChannelStat): string {
  return s.state === "building"
    ? `being built by ${s.builder ? `pid ${s.builder}` : "another process"} (stopped or slow if this lasts)`
    : "incomplete: its creator died while building it (gc or rm removes it; opening it builds it again)";
}
