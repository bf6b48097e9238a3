#!/usr/bin/env -S deno run -A
// `cli.ts bridge` (dispatched by cli/bridge.ts): runs a Bridge until Ctrl-C / SIGTERM, printing its
// stat as it goes. Routes come
// from flags (`--out jobs=jobs.eu:ack`) or a JSON file of BridgeOptions (`--config`), credentials
// and TLS from flags that map one to one onto the NATS client's options. Also runnable on its own:
// `deno run -A cli/bridge_run.ts ...`.

import { parseArgs } from "node:util";
import { credsAuthenticator } from "npm:nats@2.29.3";
import { prefixFromEnv } from "./args.ts";
import {
  Bridge,
  type BridgeOptions,
  type BridgeStat,
  FerryError,
  type InRoute,
  InvalidNameError,
  InvalidOptionError,
  type NatsOptions,
  type OutRoute,
  type SendMode,
  type ServiceRoute,
  type TopicRoute,
} from "../mod.ts";

const EXIT = { ok: 0, runtime: 1, usage: 2 } as const;

const HELP = `Usage: deno run -A cli.ts bridge [options]

Connects local channels of one namespace to NATS, until Ctrl-C or SIGTERM. Out routes forward a
local channel's messages to a subject (ack: as NATS requests, answered once a receiver on the far
side released the message; async: through JetStream, at least once); in routes deliver a
subject's messages into a local channel. Run one bridge per machine (and namespace).

  deno run -A cli.ts bridge --nats nats://10.0.0.2:4222 --out jobs=jobs:ack --in results=results:async

Options:
  --nats <url,...>              NATS servers, comma-separated (default nats://127.0.0.1:4222)
  --out <channel>=<subject>[:ack|async]
                                forward a local channel to a subject (repeatable; mode default ack)
  --in <subject>=<channel>[:ack|async]
                                deliver a subject into a local channel (repeatable; default ack)
  --topic-out <topic>=<subject> publish what is published on a local pub/sub topic on a subject
                                (NATS core, at most once; repeatable)
  --topic-in <subject>=<topic>  publish what is published on a subject on a local topic
  --service-out <service>=<subject>
                                serve a request/response service here by sending its calls as
                                NATS requests on a subject (calls and streams; repeatable)
  --service-in <subject>=<service>
                                answer a subject's requests by calling a local service
  --config <file>               BridgeOptions as JSON (nats, prefix, out, in, topics, services
                                with every route option); the flags' routes are added to its
                                routes
  --window <n>                  messages each route holds in flight at most (default 32)
  --timeout <ms>                ack routes: the producers' ack timeout; service routes: the
                                callers' longest call timeout; async out routes: how long a
                                JetStream publish waits for its ack before it is sent again
                                (default 5000)
  --ack-wait <s>                async in routes: JetStream's ack wait (default 30)
  --close-timeout <ms>          on SIGTERM/SIGINT, how long what is in flight may take to finish,
                                and the NATS connection to drain (default 5000)
  --envelope                    in routes deliver { data, redelivered, deliveries, sender, seq,
                                origin, subject } (producers must use the msgpack codec)
  --user <name> --pass <word>   NATS user and password
  --token <token>               NATS token
  --creds <file>                NATS credentials file (JWT and nkey seed)
  --tls-ca <file> --tls-cert <file> --tls-key <file>
                                TLS: the CA to trust, and this client's certificate and key
  --name <name>                 the connection's name, as the server shows it
  --stat-every <ms>             print the bridge's stat this often (default 10000; 0: at exit only)
  --prefix <prefix>             local namespace (default: $FERRY_PREFIX, else "ferry")
  --json                        one JSON object per line: {"event":"ready"|"stat"|"closed", ...stat}
  -h, --help                    show this help

Output: a line when the bridge is ready, its stat every --stat-every ms and when it stops: per
route, messages forwarded, in flight, failed, held (ack: failed ones waiting for their producer's
timeout), redelivered (may be duplicates) and retries.

Exit codes:
  0    stopped by Ctrl-C / SIGTERM
  1    runtime error: NATS unreachable or refused the credentials, JetStream missing, the
       connection ended for good, a channel could not be opened
  2    usage error: unknown option, bad route or value`;

class UsageError extends Error {}

function routeParts(flag: string, spec: string): [string, string, SendMode] {
  const m = /^([^=]+)=([^:]+)(?::(.*))?$/.exec(spec);
  if (m === null) throw new UsageError(`--${flag} ${JSON.stringify(spec)}: expected <from>=<to>[:ack|async]`);
  // What follows a ':' is the mode, never part of the subject: a mistyped mode is an error, not an
  // ack route on a subject ending ":asnyc".
  if (m[3] !== undefined && m[3] !== "ack" && m[3] !== "async") {
    throw new UsageError(
      `--${flag} ${JSON.stringify(spec)}: the mode after ':' is ack or async, not '${m[3]}'`,
    );
  }
  return [m[1], m[2], (m[3] ?? "ack") as SendMode];
}

function pairParts(flag: string, spec: string): [string, string] {
  const m = /^([^=]+)=(.+)$/.exec(spec);
  if (m === null) throw new UsageError(`--${flag} ${JSON.stringify(spec)}: expected <from>=<to>`);
  return [m[1], m[2]];
}

function integer(flag: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${flag} must be an integer >= ${min}, not '${text}'`);
  }
  return n;
}

/** The BridgeOptions of a --config file; a file that cannot be read or parsed is a usage error. */
async function configFile(path: string): Promise<BridgeOptions> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new UsageError(`--config ${JSON.stringify(path)}: cannot read it (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text) as BridgeOptions;
  } catch (e) {
    throw new UsageError(`--config ${JSON.stringify(path)}: not JSON (${(e as Error).message})`);
  }
}

/** BridgeOptions from the command line (and --config). */
async function optionsOf(
  args: string[],
): Promise<{ options: BridgeOptions; statEvery: number; json: boolean } | null> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      nats: { type: "string" },
      out: { type: "string", multiple: true },
      in: { type: "string", multiple: true },
      config: { type: "string" },
      window: { type: "string" },
      timeout: { type: "string" },
      "ack-wait": { type: "string" },
      "close-timeout": { type: "string" },
      "topic-out": { type: "string", multiple: true },
      "topic-in": { type: "string", multiple: true },
      "service-out": { type: "string", multiple: true },
      "service-in": { type: "string", multiple: true },
      envelope: { type: "boolean" },
      user: { type: "string" },
      pass: { type: "string" },
      token: { type: "string" },
      creds: { type: "string" },
      "tls-ca": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      name: { type: "string" },
      "stat-every": { type: "string" },
      prefix: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' (see --help)`);
  const options: BridgeOptions = values.config === undefined ? {} : await configFile(values.config);
  const window = integer("window", values.window, 1);
  const timeout = integer("timeout", values.timeout, 1);
  const ackWait = integer("ack-wait", values["ack-wait"], 1);
  const closeTimeout = integer("close-timeout", values["close-timeout"], 0);
  const out: OutRoute[] = (values.out ?? []).map((spec) => {
    const [channel, subject, mode] = routeParts("out", spec);
    return { channel, subject, mode, window, timeout };
  });
  const inn: InRoute[] = (values.in ?? []).map((spec) => {
    const [subject, channel, mode] = routeParts("in", spec);
    // An async in route's timeout must stay under its ack wait: by default it is derived from it.
    return {
      subject,
      channel,
      mode,
      window,
      timeout: mode === "ack" ? timeout : undefined,
      ackWait,
      envelope: values.envelope,
    };
  });
  const topics: TopicRoute[] = [
    ...(values["topic-out"] ?? []).map((spec) => {
      const [topic, subject] = pairParts("topic-out", spec);
      return { topic, subject, direction: "out" as const };
    }),
    ...(values["topic-in"] ?? []).map((spec) => {
      const [subject, topic] = pairParts("topic-in", spec);
      return { topic, subject, direction: "in" as const };
    }),
  ];
  const services: ServiceRoute[] = [
    ...(values["service-out"] ?? []).map((spec) => {
      const [service, subject] = pairParts("service-out", spec);
      return { service, subject, direction: "out" as const, window, timeout };
    }),
    ...(values["service-in"] ?? []).map((spec) => {
      const [subject, service] = pairParts("service-in", spec);
      return { service, subject, direction: "in" as const, window, timeout };
    }),
  ];
  options.out = [...(options.out ?? []), ...out];
  options.in = [...(options.in ?? []), ...inn];
  options.topics = [...(options.topics ?? []), ...topics];
  options.services = [...(options.services ?? []), ...services];
  if (options.out.length + options.in.length + options.topics.length + options.services.length === 0) {
    throw new UsageError(
      "no routes: give --out, --in, --topic-out, --topic-in, --service-out, --service-in or --config",
    );
  }
  if (closeTimeout !== undefined) options.closeTimeout = closeTimeout;
  // As every other command: --prefix, else the config file's, else $FERRY_PREFIX, else "ferry".
  options.prefix = values.prefix ?? options.prefix ?? prefixFromEnv();
  const nats: NatsOptions = { ...options.nats };
  if (values.nats !== undefined) nats.servers = values.nats.split(",");
  if (values.user !== undefined) nats.user = values.user;
  if (values.pass !== undefined) nats.pass = values.pass;
  if (values.token !== undefined) nats.token = values.token;
  if (values.name !== undefined) nats.name = values.name;
  if (values.creds !== undefined) nats.authenticator = credsAuthenticator(await Deno.readFile(values.creds));
  if (values["tls-ca"] || values["tls-cert"] || values["tls-key"]) {
    nats.tls = {
      ...nats.tls,
      ...(values["tls-ca"] ? { caFile: values["tls-ca"] } : {}),
      ...(values["tls-cert"] ? { certFile: values["tls-cert"] } : {}),
      ...(values["tls-key"] ? { keyFile: values["tls-key"] } : {}),
    };
  }
  options.nats = nats;
  return {
    options,
    statEvery: integer("stat-every", values["stat-every"], 0) ?? 10_000,
    json: values.json ?? false,
  };
}

function print(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

/** The stat as a few human lines: one for the connection, one per route. */
export function statLines(s: BridgeStat): string[] {
  const lines = [
    `bridge '${s.prefix}' ${s.connected ? "connected to" : "disconnected from"} ${s.server} ` +
    `(disconnects ${s.disconnects}, reconnects ${s.reconnects})`,
  ];
  for (const r of s.routes) {
    const arrow = r.direction === "out" ? `${r.channel} -> ${r.subject}` : `${r.subject} -> ${r.channel}`;
    lines.push(
      `  ${r.direction.padEnd(3)} ${arrow} (${r.mode}): forwarded ${r.forwarded}, in flight ${r.inFlight}, ` +
        `failed ${r.failed}, held ${r.held}, redelivered ${r.redelivered}, retries ${r.retries}` +
        (r.lastError ? `; last error: ${r.lastError.replace(/\s*\n\s*/g, " ")}` : ""),
    );
  }
  return lines;
}

function report(event: "ready" | "stat" | "closed", s: BridgeStat, json: boolean): void {
  if (json) print(JSON.stringify({ event, ...s }));
  else {for (const line of statLines(s)) {
      print(event === "ready" ? line.replace(/^bridge/, "bridge ready:") : line);
    }}
}

/** Runs `cli.ts bridge <args>`; returns the exit code. Errors are printed, never thrown. */
export async function bridgeCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = await optionsOf(args);
  } catch (e) {
    const usage = e instanceof UsageError || e instanceof SyntaxError ||
      (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    console.error(`ferry: bridge: ${e instanceof Error ? e.message : String(e)}`);
    return usage ? EXIT.usage : EXIT.runtime;
  }
  if (parsed === null) {
    print(HELP);
    return EXIT.ok;
  }
  const { options, statEvery, json } = parsed;
  let bridge: Bridge;
  try {
    bridge = await Bridge.start(options);
  } catch (e) {
    console.error(`ferry: bridge: ${e instanceof Error ? e.message : String(e)}`);
    return e instanceof InvalidOptionError || e instanceof InvalidNameError ? EXIT.usage : EXIT.runtime;
  }
  // Listening before "ready" is printed: whoever reads that line may signal at once.
  const stop = Promise.withResolvers<void>();
  const signals = ["SIGINT", "SIGTERM"] as const;
  const onSignal = () => stop.resolve();
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  report("ready", bridge.stat(), json);
  const timer = statEvery > 0 ? setInterval(() => report("stat", bridge.stat(), json), statEvery) : undefined;
  const ended = await Promise.race([stop.promise.then(() => undefined), bridge.closed]);
  clearInterval(timer);
  for (const s of signals) Deno.removeSignalListener(s, onSignal);
  await bridge.close();
  report("closed", bridge.stat(), json);
  if (ended !== undefined) {
    console.error(`ferry: bridge: ${ended instanceof FerryError ? ended.message : String(ended)}`);
    return EXIT.runtime;
  }
  return EXIT.ok;
}

if (import.meta.main) Deno.exit(await bridgeCommand(Deno.args));
