#!/usr/bin/env -S deno run -A
// The ferry command line: `deno run -A cli.ts <command> [options]` (send, recv, tail, stat, ls, rm,
// gc, bench). Human-readable output by default, `--json` for scripts. Every user error is one line
// `ferry: <message>` on stderr and a documented exit code (EXIT_CODES), never a stack trace
// (FERRY_DEBUG=1 adds the stack of an unexpected error).
//
// Arguments are parsed with `node:util` parseArgs: the design card's @std/cli lives on JSR, which
// cannot be reached from where ferry is built (see README, "Dependencies").

import { parseArgs } from "node:util";
import {
  Channel,
  ChannelClosedError,
  ChannelNotFoundError,
  type ChannelStat,
  DecodeError,
  FerryError,
  InvalidNameError,
  InvalidOptionError,
  type Message,
  Namespace,
  type SendMode,
} from "./mod.ts";
import { gc, scanChannels } from "./src/admin.ts";
import { PATTERN_HELP, patternCommand } from "./cli/patterns.ts";

// ------------------------------------------------------------------ exit codes and errors

const EXIT = { ok: 0, runtime: 1, usage: 2, notFound: 3, interrupted: 130 } as const;

const EXIT_CODES = `Exit codes:
  0    success
  1    runtime error: timeout, channel full, receiver died (ack), message expired or too large,
       channel in use (rm), not a ferry channel, no permission, I/O
  2    usage error: unknown command or option, bad option value, invalid channel name or prefix
  3    channel not found
  130  recv interrupted by Ctrl-C / SIGTERM (tail stops on them with 0)`;

/** A mistake in the command line itself: exit 2. */
class UsageError extends Error {}

/** stdout was closed by its reader (`| head`): stop quietly. */
class OutputClosed extends Error {}

function exitCodeOf(error: unknown): number {
  if (
    error instanceof UsageError || error instanceof InvalidNameError || error instanceof InvalidOptionError
  ) {
    return EXIT.usage;
  }
  if (error instanceof ChannelNotFoundError) return EXIT.notFound;
  return EXIT.runtime;
}

function describe(error: unknown): string {
  let text: string;
  if (error instanceof FerryError || error instanceof UsageError) text = error.message;
  else if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    text = `${error.message} (run with -A, or --allow-ffi --allow-read --allow-write --allow-env)`;
  } else if (error instanceof Error) text = error.message.replace(/^ferry: /, "");
  else text = String(error);
  return text.replace(/\s*\n\s*/g, " ");
}

// ------------------------------------------------------------------ output

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

function print(line = ""): void {
  writeAll(Deno.stdout, `${line}\n`);
}

function printError(message: string): void {
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
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, jsonReplacer, indent) ?? "null";
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function formatBytes(n: number): string {
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

function formatTime(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ` +
    `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`;
}

function formatAge(date: Date): string {
  const s = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h ago`;
}

function formatParticipants(stat: ChannelStat): string {
  if (stat.participants.length === 0) return "-";
  return stat.participants.map((p) => p.alive ? `${p.pid}` : `${p.pid}(dead)`).join(" ");
}

/** Columns left-aligned, or right-aligned where `right[i]`; two spaces between. */
function table(header: string[], rows: string[][], right: boolean[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line)];
}

/** A stat as JSON: the ChannelStat fields, createdAt as an ISO string. */
function statJson(stat: ChannelStat): Record<string, unknown> {
  return { ...stat, createdAt: stat.createdAt.toISOString() };
}

// ------------------------------------------------------------------ option parsing

interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** Placeholder shown in help for a string option. */
  arg?: string;
  help: string;
}

interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

const PREFIX: OptionSpec = {
  type: "string",
  arg: "<prefix>",
  help: 'namespace of the channel (default "ferry")',
};
const JSON_OPT: OptionSpec = { type: "boolean", help: "machine-readable output (see above)" };
const HELP: OptionSpec = { type: "boolean", short: "h", help: "show this help" };
const TIMEOUT: OptionSpec = {
  type: "string",
  arg: "<ms>",
  help: 'longest wait for each message, in ms (default 5000; 0: do not wait; "inf": no limit)',
};
const CREATE: OptionSpec = { type: "boolean", help: "create the channel if it does not exist (else exit 3)" };
const CAPACITY: OptionSpec = {
  type: "string",
  arg: "<n>",
  help: "with --create: messages the channel holds at once (default 100)",
};
const MAX_SIZE: OptionSpec = {
  type: "string",
  arg: "<bytes>",
  help: "with --create: largest encoded message (default 1048576)",
};

/** Marks arguments that look like negative numbers so parseArgs does not take them for options. */
const NEGATIVE = "\u0000";

function parse(command: string, args: string[], options: Record<string, OptionSpec>): ParsedArgs {
  const masked = args.map((a) => /^-[0-9.]/.test(a) ? NEGATIVE + a : a);
  const unmask = (v: string) => v.startsWith(NEGATIVE) ? v.slice(1) : v;
  const config = Object.fromEntries(
    Object.entries(options).map((
      [name, o],
    ) => [name, o.short ? { type: o.type, short: o.short } : { type: o.type }]),
  );
  let parsed;
  try {
    parsed = parseArgs({ args: masked, options: config, allowPositionals: true, strict: true });
  } catch (error) {
    const code = (error as { code?: string }).code;
    const option = /'([^']+)'/.exec((error as Error).message)?.[1] ?? "";
    const see = `see: cli.ts ${command} --help`;
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new UsageError(`${command}: unknown option ${option} (${see})`);
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      const flag = option.split(", ").pop()?.split(" ")[0] ?? option;
      const what = /does not take/.test((error as Error).message) ? "takes no value" : "needs a value";
      throw new UsageError(`${command}: option ${flag} ${what} (${see})`);
    }
    throw new UsageError(`${command}: ${(error as Error).message} (${see})`);
  }
  const values: ParsedArgs["values"] = {};
  for (const [name, value] of Object.entries(parsed.values)) {
    values[name] = typeof value === "string" ? unmask(value) : value as boolean | undefined;
  }
  return { values, positionals: parsed.positionals.map(unmask) };
}

function str(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === "string" ? v : undefined;
}

function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

function prefixOf(args: ParsedArgs): string {
  return str(args, "prefix") ?? "ferry";
}

function integer(option: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${option} must be an integer >= ${min}, not '${text}'`);
  }
  return n;
}

function milliseconds(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (/^(inf|infinity|none)$/i.test(text)) return Infinity;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new UsageError(`--timeout must be a number of milliseconds >= 0 or "inf", not '${text}'`);
  }
  return n;
}

function seconds(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || Number.isNaN(n) || n < 0) {
    throw new UsageError(`--expiry must be a number of seconds >= 0, not '${text}'`);
  }
  return n;
}

function sendMode(text: string | undefined): SendMode {
  if (text === undefined || text === "ack" || text === "async") return text ?? "ack";
  throw new UsageError(`--mode must be "ack" or "async", not '${text}'`);
}

function channelArg(command: string, args: ParsedArgs, extra = 0): string {
  const [name, ...rest] = args.positionals;
  if (name === undefined) {
    throw new UsageError(`${command}: missing <channel> (see: cli.ts ${command} --help)`);
  }
  if (rest.length > extra) {
    throw new UsageError(`${command}: unexpected argument '${rest[extra]}' (see: cli.ts ${command} --help)`);
  }
  return name;
}

function noPositionals(command: string, args: ParsedArgs): void {
  if (args.positionals.length > 0) {
    throw new UsageError(
      `${command}: unexpected argument '${args.positionals[0]}' (see: cli.ts ${command} --help)`,
    );
  }
}

// ------------------------------------------------------------------ opening

interface OpenArgs {
  name: string;
  prefix: string;
  create: boolean;
  capacity?: number;
  maxMessageSize?: number;
}

function openArgs(command: string, args: ParsedArgs, name: string): OpenArgs {
  const capacity = integer("capacity", str(args, "capacity"), 1);
  const maxMessageSize = integer("max-message-size", str(args, "max-message-size"), 0);
  const create = flag(args, "create");
  if (!create && (capacity !== undefined || maxMessageSize !== undefined)) {
    throw new UsageError(
      `${command}: --capacity and --max-message-size only apply with --create (an existing channel keeps its own)`,
    );
  }
  return { name, prefix: prefixOf(args), create, capacity, maxMessageSize };
}

/**
 * Opens the channel; without --create it must exist already (a mistyped name would otherwise
 * create a new, empty channel and wait on it).
 */
function openChannel(
  command: string,
  o: OpenArgs,
  options: Parameters<typeof Channel.open>[1] = {},
): Channel {
  if (!o.create) {
    try {
      Channel.stat(o.name, { prefix: o.prefix });
    } catch (error) {
      if (error instanceof ChannelNotFoundError) {
        throw new ChannelNotFoundError(`${error.message} (${command} --create makes it)`);
      }
      throw error;
    }
  }
  return Channel.open(o.name, {
    ...options,
    prefix: o.prefix,
    ...(o.capacity === undefined ? {} : { capacity: o.capacity }),
    ...(o.maxMessageSize === undefined ? {} : { maxMessageSize: o.maxMessageSize }),
  });
}

/** Calls `stop` on Ctrl-C and SIGTERM until the returned function removes the listeners. */
function onInterrupt(stop: () => void): () => void {
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  return () => {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
  };
}

// ------------------------------------------------------------------ commands

interface Command {
  usage: string;
  summary: string;
  /** Help text between the usage line and the options. */
  about: string;
  options: Record<string, OptionSpec>;
  run(args: ParsedArgs): Promise<number>;
}

/** Text as a message value: JSON when it parses, else the text itself as a string. */
function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function* stdinLines(): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, end);
      pending = pending.slice(end + 1);
    }
  }
  if (pending) yield pending;
}

async function* stdinValues(): AsyncGenerator<unknown> {
  for await (const line of stdinLines()) {
    const text = line.endsWith("\r") ? line.slice(0, -1) : line;
    if (text !== "") yield parseValue(text);
  }
}

async function send(args: ParsedArgs): Promise<number> {
  const name = channelArg("send", args, 1);
  let source = args.positionals[1];
  if (source === undefined) {
    if (Deno.stdin.isTerminal()) {
      throw new UsageError(
        "send: give a JSON value, or - to send each line of stdin (see: cli.ts send --help)",
      );
    }
    source = "-";
  }
  const mode = sendMode(str(args, "mode"));
  const timeout = milliseconds(str(args, "timeout"));
  const expiry = seconds(str(args, "expiry"));
  const o = openArgs("send", args, name);
  const fromStdin = source === "-";
  const channel = openChannel("send", o, {
    mode,
    ...(timeout === undefined ? {} : { timeout }),
    ...(expiry === undefined ? {} : { expiry }),
  });
  let sent = 0;
  try {
    const values = fromStdin ? stdinValues() : [parseValue(source)];
    for await (const value of values) {
      try {
        await channel.send(value);
      } catch (error) {
        if (fromStdin && error instanceof FerryError) {
          error.message += ` (line ${sent + 1} of stdin; ${sent} sent before it)`;
        }
        throw error;
      }
      sent++;
    }
  } finally {
    channel.close();
  }
  if (flag(args, "json")) {
    print(toJson({ channel: name, prefix: o.prefix, mode, sent }));
  } else {
    const how = mode === "ack" ? "each released by a receiver" : "queued";
    print(`sent ${sent} message${sent === 1 ? "" : "s"} to '${name}' (${mode}: ${how})`);
  }
  return EXIT.ok;
}

/** One output line for a message: its data as JSON, or with --json the message with its metadata. */
function messageLine(message: Message, json: boolean, raw: boolean): string {
  let data: unknown;
  if (raw) {
    data = base64(message.bytes);
  } else {
    try {
      data = message.data;
    } catch (error) {
      if (error instanceof DecodeError) {
        throw new DecodeError(
          `${error.message}; the message was sent with another codec: --raw prints its bytes as base64 ` +
            "(it was not released, so it goes back to the channel)",
        );
      }
      throw error;
    }
  }
  if (!json) return toJson(data);
  return toJson({ seq: message.seq, sender: message.sender, redelivered: message.redelivered, data });
}

async function recv(args: ParsedArgs): Promise<number> {
  const name = channelArg("recv", args);
  const count = integer("count", str(args, "count"), 1) ?? 1;
  const timeout = milliseconds(str(args, "timeout"));
  const json = flag(args, "json");
  const raw = flag(args, "raw");
  const channel = openChannel("recv", openArgs("recv", args, name), { autoRelease: false });
  let interrupted = false;
  const removeListeners = onInterrupt(() => {
    interrupted = true;
    channel.close(); // the pending recv rejects with ChannelClosedError
  });
  let received = 0;
  try {
    for (; received < count; received++) {
      let message: Message;
      try {
        message = await channel.recv(timeout === undefined ? {} : { timeout });
      } catch (error) {
        if (interrupted && error instanceof ChannelClosedError) return EXIT.interrupted;
        if (error instanceof FerryError && count > 1) error.message += ` (received ${received} of ${count})`;
        throw error;
      }
      // Released only once printed: an ack sender learns its message reached the output, and one
      // that could not be printed goes back to the channel when it closes.
      print(messageLine(message, json, raw));
      message.release();
    }
  } finally {
    removeListeners();
    channel.close();
  }
  return EXIT.ok;
}

async function tail(args: ParsedArgs): Promise<number> {
  const name = channelArg("tail", args);
  const json = flag(args, "json");
  const raw = flag(args, "raw");
  const channel = openChannel("tail", openArgs("tail", args, name), { autoRelease: false });
  // Closing ends the for-await below. The listener can only run while the loop awaits the next
  // message: printing and releasing one is synchronous, so nothing printed is handed back.
  const removeListeners = onInterrupt(() => channel.close());
  try {
    for await (const message of channel) {
      print(messageLine(message, json, raw));
      message.release();
    }
  } finally {
    removeListeners();
    channel.close();
  }
  return EXIT.ok;
}

function stat(args: ParsedArgs): Promise<number> {
  const name = channelArg("stat", args);
  const s = Channel.stat(name, { prefix: prefixOf(args) });
  if (flag(args, "json")) {
    print(toJson(statJson(s), 2));
    return Promise.resolve(EXIT.ok);
  }
  const alive = s.participants.filter((p) => p.alive).length;
  const rows: [string, string][] = [
    ["channel", `${s.name}  (/dev/shm/${s.prefix}.${s.name})`],
    ["created", `${formatTime(s.createdAt)}  (${formatAge(s.createdAt)})`],
    ["capacity", `${s.capacity} messages of at most ${formatBytes(s.maxMessageSize)}`],
    ["memory", `${formatBytes(s.bytes)} reserved, ${formatBytes(s.resident)} resident`],
    ["depth", `${s.depth} queued, not yet received`],
    ["in flight", `${s.inFlight} received, not yet released`],
    ["sent", `${s.counters.sent}`],
    ["received", `${s.counters.received}`],
    ["released", `${s.counters.released}`],
    ["expired", `${s.counters.expired}`],
    ["full", `${s.counters.full}  (sends that found no room)`],
    ["redelivered", `${s.counters.redelivered}`],
    ["participants", `${s.participants.length} (${alive} alive, ${s.participants.length - alive} dead)`],
  ];
  for (const [key, value] of rows) print(`${key.padEnd(14)}${value}`);
  for (const p of s.participants) {
    const state = (p.alive ? "alive" : "dead").padEnd(7);
    print(
      `  pid ${String(p.pid).padEnd(10)}${state}${
        p.role.padEnd(10)
      }${p.inFlight} of its sent messages in flight`,
    );
  }
  return Promise.resolve(EXIT.ok);
}

function ls(args: ParsedArgs): Promise<number> {
  noPositionals("ls", args);
  const scan = scanChannels(prefixOf(args));
  if (flag(args, "json")) {
    print(toJson({ prefix: scan.prefix, channels: scan.channels.map(statJson), skipped: scan.skipped }, 2));
    return Promise.resolve(EXIT.ok);
  }
  if (scan.channels.length === 0) {
    print(`no channels under prefix '${scan.prefix}'`);
  } else {
    const header = [
      "NAME",
      "DEPTH",
      "IN-FLIGHT",
      "CAPACITY",
      "SENT",
      "RECEIVED",
      "RELEASED",
      "EXPIRED",
      "FULL",
      "REDELIVERED",
      "MEMORY",
      "CREATED",
      "PARTICIPANTS",
    ];
    const rows = scan.channels.map((s) => [
      s.name,
      ...[s.depth, s.inFlight, s.capacity].map(String),
      ...[s.counters.sent, s.counters.received, s.counters.released].map(String),
      ...[s.counters.expired, s.counters.full, s.counters.redelivered].map(String),
      formatBytes(s.bytes),
      formatTime(s.createdAt),
      formatParticipants(s),
    ]);
    const right = header.map((_, i) => i >= 1 && i <= 10);
    for (const line of table(header, rows, right)) print(line);
  }
  for (const s of scan.skipped) print(`skipped ${s.name}: ${s.reason.replace(/\s*\n\s*/g, " ")}`);
  return Promise.resolve(EXIT.ok);
}

function rm(args: ParsedArgs): Promise<number> {
  const prefix = prefixOf(args);
  const names = args.positionals;
  if (names.length === 0) throw new UsageError("rm: missing <channel> (see: cli.ts rm --help)");
  const force = flag(args, "force");
  // Every channel is checked before any is removed: either all go or none.
  for (const name of names) {
    if (force) {
      // Not required to be a readable ferry channel, but it must exist.
      if (!segmentExists(prefix, name)) Channel.stat(name, { prefix }); // throws the right error
      continue;
    }
    const s = Channel.stat(name, { prefix });
    const alive = s.participants.filter((p) => p.alive);
    if (s.depth > 0 || s.inFlight > 0 || alive.length > 0) {
      const what = [];
      if (s.depth > 0) what.push(`${s.depth} queued`);
      if (s.inFlight > 0) what.push(`${s.inFlight} in flight`);
      if (alive.length > 0) what.push(`open in pid ${alive.map((p) => p.pid).join(", ")}`);
      throw new FerryError(
        "InUse",
        `channel '${name}' is in use (${what.join(", ")}); rm --force removes it anyway`,
      );
    }
  }
  const removed = names.filter((name) => Channel.unlink(name, { prefix }));
  if (flag(args, "json")) print(toJson({ prefix, removed }));
  else for (const name of removed) print(`removed '${name}'`);
  return Promise.resolve(EXIT.ok);
}

function segmentExists(prefix: string, name: string): boolean {
  try {
    Deno.statSync(`/dev/shm/${prefix}.${name}`);
    return true;
  } catch {
    return false;
  }
}

function gcCommand(args: ParsedArgs): Promise<number> {
  noPositionals("gc", args);
  const prefix = prefixOf(args);
  const dryRun = flag(args, "dry-run");
  const removed = gc(prefix, { dryRun });
  if (flag(args, "json")) {
    print(toJson({ prefix, dryRun, removed }));
  } else if (removed.length === 0) {
    print(`nothing to remove under prefix '${prefix}'`);
  } else {
    const verb = dryRun ? "would remove" : "removed";
    print(
      `${verb} ${removed.length} abandoned channel${removed.length === 1 ? "" : "s"}: ${removed.join(", ")}`,
    );
  }
  return Promise.resolve(EXIT.ok);
}

/** `group add|rm|ls|send`: memberships in the namespace's group table, and fan-out. */
async function group(args: ParsedArgs): Promise<number> {
  const [action, name, third, ...rest] = args.positionals;
  const usage = (what: string) => new UsageError(`group: ${what} (see: cli.ts group --help)`);
  if (rest.length > 0) throw usage(`unexpected argument '${rest[0]}'`);
  const prefix = prefixOf(args);
  const json = flag(args, "json");
  using ns = Namespace.connect({ prefix });
  switch (action) {
    case "add":
    case "rm": {
      if (name === undefined || third === undefined) throw usage(`${action} needs <group> <channel>`);
      const changed = action === "add" ? ns.groupAdd(name, third) : ns.groupDiscard(name, third);
      if (json) print(toJson({ prefix, group: name, channel: third, action, changed }));
      else {
        const what = action === "add"
          ? (changed ? "added to" : "refreshed in")
          : changed
          ? "removed from"
          : "not in";
        print(`'${third}' ${what} group '${name}'`);
      }
      return EXIT.ok;
    }
    case "ls": {
      if (name === undefined || third !== undefined) throw usage("ls needs <group>");
      const members = ns.groupMembers(name);
      if (json) print(toJson({ prefix, group: name, members }));
      else print(members.length === 0 ? `group '${name}' has no members` : members.join("\n"));
      return EXIT.ok;
    }
    case "send": {
      if (name === undefined || third === undefined) throw usage("send needs <group> <json>");
      const mode = sendMode(str(args, "mode"));
      const timeout = milliseconds(str(args, "timeout"));
      const result = await ns.sendGroup(name, parseValue(third), { mode, timeout });
      if (json) print(toJson({ prefix, mode, ...result }));
      else {
        print(
          `sent to ${result.sent.length} member(s)${result.sent.length ? ": " + result.sent.join(", ") : ""}`,
        );
        if (result.skipped.length) print(`skipped (full): ${result.skipped.join(", ")}`);
        for (const f of result.failed) {
          print(`failed: ${f.channel}: ${f.error instanceof Error ? f.error.message : f.error}`);
        }
      }
      return result.failed.length > 0 ? EXIT.runtime : EXIT.ok;
    }
    default:
      throw usage(action === undefined ? "missing add|rm|ls|send" : `unknown action '${action}'`);
  }
}

async function bench(argv: string[]): Promise<number> {
  // Imported only for this command, so the others start without loading the benchmark.
  const { runBench } = await import("./bench/main.ts");
  await runBench(argv);
  return EXIT.ok;
}

const RECV_OUTPUT =
  `Output: each message's data as one JSON line (bigint as a number or string, bytes as an array
of numbers, Map as an object). With --json, each message as one JSON line
{"seq", "sender", "redelivered", "data"}. With --raw, data is the encoded payload as base64,
for messages sent with another codec.
A message is released only after its line is written: an ack sender's send resolves then.`;

const COMMANDS: Record<string, Command> = {
  send: {
    usage: "send <channel> [<json> | -]",
    summary: "send one JSON value, or each line of stdin with -",
    about: `Sends <json> as one message: JSON when it parses (42, true, '{"id":1}'), else the text itself
as a string (hello). With -, or no value and stdin not a terminal, each non-empty line of stdin
is one message, sent in turn. A value starting with - other than a number needs -- before it.
ack mode waits, per message, until a receiver released it; async mode until it is queued.
The channel must exist unless --create is given.
Output: "sent N messages to '<channel>'"; with --json {"channel", "prefix", "mode", "sent"}.`,
    options: {
      prefix: PREFIX,
      mode: {
        type: "string",
        arg: "ack|async",
        help: "ack (default): wait for a receiver to release it; async: queued",
      },
      timeout: {
        ...TIMEOUT,
        help: "longest wait for room, then for the ack, in ms (default 5000; inf: none)",
      },
      expiry: {
        type: "string",
        arg: "<s>",
        help: "seconds before an unreceived message is dropped (default 60; 0: never)",
      },
      create: CREATE,
      capacity: CAPACITY,
      "max-message-size": MAX_SIZE,
      json: JSON_OPT,
      help: HELP,
    },
    run: send,
  },
  recv: {
    usage: "recv <channel> [--count N]",
    summary: "receive N messages (default 1), each printed as a JSON line",
    about: `Receives --count messages, waiting up to --timeout ms for each; exits 1 if one does not come.
The channel must exist unless --create is given. Ctrl-C stops it (exit 130).
${RECV_OUTPUT}`,
    options: {
      prefix: PREFIX,
      count: { type: "string", short: "n", arg: "<n>", help: "messages to receive (default 1)" },
      timeout: TIMEOUT,
      raw: { type: "boolean", help: "print each payload's bytes as base64 instead of decoding it" },
      create: CREATE,
      capacity: CAPACITY,
      "max-message-size": MAX_SIZE,
      json: JSON_OPT,
      help: HELP,
    },
    run: recv,
  },
  tail: {
    usage: "tail <channel>",
    summary: "print messages as they come until Ctrl-C",
    about: `Receives and prints every message until Ctrl-C or SIGTERM, then leaves the channel cleanly
and exits 0. The channel must exist unless --create is given.
${RECV_OUTPUT}`,
    options: {
      prefix: PREFIX,
      raw: { type: "boolean", help: "print each payload's bytes as base64 instead of decoding it" },
      create: CREATE,
      capacity: CAPACITY,
      "max-message-size": MAX_SIZE,
      json: JSON_OPT,
      help: HELP,
    },
    run: tail,
  },
  stat: {
    usage: "stat <channel>",
    summary: "depth, counters and participants of one channel",
    about: `Shows what the channel holds now: capacity, memory, depth (queued), in flight (received, not
released), counters (sent, received, released, expired, full, redelivered), creation time and
participants (pid, alive or dead, role, its sent messages in flight), and memory reserved and
resident. Reading it does not join the channel.
With --json, one JSON document: the library's ChannelStat (createdAt as an ISO string).`,
    options: { prefix: PREFIX, json: JSON_OPT, help: HELP },
    run: stat,
  },
  ls: {
    usage: "ls [--prefix <prefix>]",
    summary: "every channel under a prefix, as a table",
    about: `Lists the channels under the prefix (/dev/shm/<prefix>.*) with depth, counters, memory,
creation time and participants ("(dead)" after a dead one's pid). Segments there that are not
readable ferry channels are listed after the table as "skipped".
With --json, one JSON document: {"prefix", "channels": [ChannelStat...], "skipped": [{"name", "code", "reason"}]}.`,
    options: { prefix: PREFIX, json: JSON_OPT, help: HELP },
    run: ls,
  },
  rm: {
    usage: "rm <channel>...",
    summary: "remove channels",
    about: `Removes the channels' segments. A channel that holds messages or is open in a live process
is refused (exit 1) unless --force; every channel is checked before any is removed.
Processes that have it open keep working on the removed segment; new openers get a new one.
With --json: {"prefix", "removed": [names]}.`,
    options: {
      prefix: PREFIX,
      force: {
        type: "boolean",
        short: "f",
        help: "remove even if in use, holding messages, or not a ferry channel",
      },
      json: JSON_OPT,
      help: HELP,
    },
    run: rm,
  },
  gc: {
    usage: "gc [--prefix <prefix>]",
    summary: "remove abandoned channels (every participant dead or gone, nothing held)",
    about: `Removes the channels under the prefix that nobody alive has open and that hold nothing (depth 0,
nothing in flight). Channels with queued messages are kept: queues outlive their senders.
With --json: {"prefix", "dryRun", "removed": [names]}.`,
    options: {
      prefix: PREFIX,
      "dry-run": { type: "boolean", help: "only list what would be removed" },
      json: JSON_OPT,
      help: HELP,
    },
    run: gcCommand,
  },
  group: {
    usage: "group add|rm <group> <channel> | group ls <group> | group send <group> <json>",
    summary: "group memberships (add, rm, ls) and fan-out to every member (send)",
    about: `Groups live in the namespace's group table and outlive the process that changed them; a
membership expires after 86400 s unless added again. send delivers one copy to every member channel:
a full member is skipped (async mode) and reported; in ack mode it waits for every copy to be
released and reports members whose copy failed (exit 1 if any did).
With --json: one document with what was done (members for ls; sent, skipped, failed for send).`,
    options: {
      prefix: PREFIX,
      mode: { type: "string", arg: "ack|async", help: "for send: ack (default) or async" },
      timeout: TIMEOUT,
      json: JSON_OPT,
      help: HELP,
    },
    run: group,
  },
};

const BENCH_SUMMARY = "run the benchmark (arguments, including --help, go to bench/main.ts)";

function commandHelp(name: string): string {
  const c = COMMANDS[name];
  const optionLines = Object.entries(c.options).map(([option, o]) => {
    const short = o.short ? `-${o.short}, ` : "";
    const left = `  ${short}--${option}${o.type === "string" ? ` ${o.arg ?? "<value>"}` : ""}`;
    return `${left.padEnd(30)}${o.help}`;
  });
  return `Usage: deno run -A cli.ts ${c.usage} [options]

${c.summary[0].toUpperCase()}${c.summary.slice(1)}.

${c.about}

Options:
${optionLines.join("\n")}

${EXIT_CODES}`;
}

function mainHelp(): string {
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(30)}${c.summary}`);
  lines.push(`  ${"bench [args]".padEnd(30)}${BENCH_SUMMARY}`);
  for (const [usage, summary] of PATTERN_HELP) lines.push(`  ${usage.padEnd(30)}${summary}`);
  return `ferry: message passing between processes through shared memory (/dev/shm/<prefix>.<name>)

Usage: deno run -A cli.ts <command> [options]

Commands:
${lines.join("\n")}

Every command takes --prefix <prefix> (namespace, default "ferry"), --json (machine-readable
output) and -h, --help. Channel names and prefixes: 1 to 100 of letters, digits, . _ - !
Run \`deno run -A cli.ts <command> --help\` for a command's options.

${EXIT_CODES}`;
}

function debugging(): boolean {
  try {
    return Boolean(Deno.env.get("FERRY_DEBUG"));
  } catch {
    return false; // no --allow-env
  }
}

/** Runs the command line `argv` and returns the exit code; errors are printed, never thrown. */
export async function main(argv: string[]): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined) throw new UsageError("no command given (see: cli.ts --help)");
    if (command === "-h" || command === "--help" || command === "help") {
      const topic = rest[0];
      if (topic !== undefined && topic in COMMANDS) print(commandHelp(topic));
      else if (topic !== undefined && topic !== "bench") throw new UsageError(`unknown command '${topic}'`);
      else print(mainHelp());
      return EXIT.ok;
    }
    if (command === "bench") return await bench(rest);
    const patternExit = await patternCommand(command, rest); // call, services, pub, sub: cli/patterns.ts
    if (patternExit !== undefined) return patternExit;
    const spec = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (spec === undefined) {
      const known = [...Object.keys(COMMANDS), "bench"].join(", ");
      throw new UsageError(`unknown command '${command}' (commands: ${known}; see: cli.ts --help)`);
    }
    const args = parse(command, rest, spec.options);
    if (flag(args, "help")) {
      print(commandHelp(command));
      return EXIT.ok;
    }
    return await spec.run(args);
  } catch (error) {
    if (error instanceof OutputClosed) return EXIT.ok;
    printError(describe(error));
    const unexpected = !(error instanceof FerryError || error instanceof UsageError);
    if (unexpected && debugging()) console.error(error);
    return exitCodeOf(error);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
