// Argument parsing: node:util parseArgs (the design card's @std/cli lives on JSR, which cannot be
// reached from where ferry is built; see README, "Dependencies"), with usage errors that name the
// command, and the checks every option value goes through before anything is opened.

import { parseArgs } from "node:util";
import type { SendMode, TrustOptions } from "../mod.ts";
import { UsageError, usageError } from "./errors.ts";

/** One option of a command: what parseArgs needs, and its line in the help. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** Placeholder shown in help for a string option. */
  arg?: string;
  help: string;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Marks arguments that look like negative numbers so parseArgs does not take them for options. */
const NEGATIVE = "\u0000";

export function parse(command: string, args: string[], options: Record<string, OptionSpec>): ParsedArgs {
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
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") throw usageError(command, `unknown option ${option}`);
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      const flag = option.split(", ").pop()?.split(" ")[0] ?? option;
      const what = /does not take/.test((error as Error).message) ? "takes no value" : "needs a value";
      throw usageError(command, `option ${flag} ${what}`);
    }
    throw usageError(command, (error as Error).message);
  }
  const values: ParsedArgs["values"] = {};
  for (const [name, value] of Object.entries(parsed.values)) {
    values[name] = typeof value === "string" ? unmask(value) : value as boolean | undefined;
  }
  return { values, positionals: parsed.positionals.map(unmask) };
}

export function str(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === "string" ? v : undefined;
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

/** --prefix, else FERRY_PREFIX (one namespace for a whole shell session), else "ferry". */
export function prefixOf(args: ParsedArgs): string {
  return str(args, "prefix") ?? prefixFromEnv() ?? "ferry";
}

/** FERRY_PREFIX when it is set (and readable without a prompt); undefined otherwise. */
export function prefixFromEnv(): string | undefined {
  // Asked without a prompt: a CLI run without --allow-env simply uses the default.
  const allowed = Deno.permissions.querySync({ name: "env", variable: "FERRY_PREFIX" }).state === "granted";
  const value = allowed ? Deno.env.get("FERRY_PREFIX") : undefined;
  return value === "" ? undefined : value;
}

export function integer(option: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${option} must be an integer >= ${min}, not '${text}'`);
  }
  return n;
}

export function milliseconds(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (/^(inf|infinity|none)$/i.test(text)) return Infinity;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new UsageError(`--timeout must be a number of milliseconds >= 0 or "inf", not '${text}'`);
  }
  return n;
}

export function seconds(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || Number.isNaN(n) || n < 0) {
    throw new UsageError(`--expiry must be a number of seconds >= 0, not '${text}'`);
  }
  return n;
}

/** --permissions and --trust, as the library's options. */
export function trustArgs(args: ParsedArgs): TrustOptions {
  const out: TrustOptions = {};
  const permissions = str(args, "permissions");
  if (permissions !== undefined) {
    if (!/^0?o?[0-7]{1,3}$/.test(permissions)) {
      throw new UsageError(
        `--permissions must be octal permission bits such as 600 or 666, not '${permissions}'`,
      );
    }
    out.permissions = parseInt(permissions.replace(/^0?o?/, ""), 8);
  }
  const trust = str(args, "trust");
  if (trust !== undefined) {
    const uids = trust.split(",").map((t) => t.trim());
    if (uids.some((t) => !/^\d+$/.test(t))) {
      throw new UsageError(`--trust must be a comma-separated list of uids, not '${trust}'`);
    }
    out.trustedOwners = uids.map(Number);
  }
  return out;
}

export function sendMode(text: string | undefined): SendMode {
  if (text === undefined || text === "ack" || text === "async") return text ?? "ack";
  throw new UsageError(`--mode must be "ack" or "async", not '${text}'`);
}

/** The <channel> positional, with at most `extra` positionals after it. */
export function channelArg(command: string, args: ParsedArgs, extra = 0): string {
  const [name, ...rest] = args.positionals;
  if (name === undefined) throw usageError(command, "missing <channel>");
  if (rest.length > extra) throw usageError(command, `unexpected argument '${rest[extra]}'`);
  return name;
}

export function noPositionals(command: string, args: ParsedArgs): void {
  if (args.positionals.length > 0) {
    throw usageError(command, `unexpected argument '${args.positionals[0]}'`);
  }
}
