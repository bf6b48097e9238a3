// The patterns' commands of the ferry command line: call a service, list services, publish and
// subscribe. They are entries of the command table (cli/commands.ts); each command parses its own arguments (node:util parseArgs)
// and returns an exit code (0 ok, 1 runtime error, 2 usage error), printing errors as one line.

import { parseArgs } from "node:util";
import type { PassThroughCommand } from "./command.ts";
import {
  type ChannelStat,
  connect,
  FerryError,
  InvalidNameError,
  InvalidOptionError,
  listChannels,
  publish,
  subscribe,
} from "../mod.ts";
import { ownerAlive } from "../src/patterns/private_channels.ts";

/** One line per command for `cli.ts --help`. */
export const PATTERN_HELP = [
  ["call <service> <method> [<json>]", "call a service's method once and print its result as JSON"],
  ["services", "services of a namespace: servers, clients, calls queued and in progress"],
  ["pub <topic> <json>", "publish one JSON value to a topic's subscribers"],
  ["sub <topic> [--count N]", "subscribe and print each published value as a JSON line"],
];

const USAGE: Record<string, string> = {
  call: `Usage: deno run -A cli.ts call <service> <method> [<json>] [--timeout ms] [--prefix p] [--json]
Calls <method> of <service> with <json> (JSON when it parses, else the text as a string; none: no
argument) and prints the result as JSON. A handler's error prints its code and message, exit 1.
--json prints {"service", "method", "result"}; errors are one line on stderr.`,
  services: `Usage: deno run -A cli.ts services [--prefix p] [--json]
Lists the services of the namespace from their channels, without joining any: live servers (their
control channels), live clients (their reply channels), calls queued (not yet taken) and calls in
progress (taken by a server, not yet answered).`,
  pub: `Usage: deno run -A cli.ts pub <topic> <json> [--prefix p] [--json]
Publishes one value (JSON when it parses, else the text) to every subscriber of <topic> now and
prints how many got it, dropped it (full "drop" inbox) or were found dead.`,
  sub: `Usage: deno run -A cli.ts sub <topic> [--count N] [--timeout ms] [--prefix p] [--json]
Subscribes to <topic> and prints each value published afterwards as a JSON line (with --json, a line
{"topic", "data", "headers", "publisher"}), until --count values or Ctrl-C. The inbox is removed on exit.`,
};

class UsageError extends Error {}

function value(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function ms(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (text === "inf" || text === "Infinity") return Infinity;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) {
    throw new UsageError(`--timeout must be milliseconds or inf, not '${text}'`);
  }
  return n;
}

const json = (v: unknown) =>
  JSON.stringify(v, (_k, x) => typeof x === "bigint" ? x.toString() : x instanceof Uint8Array ? [...x] : x);

/** Services of a namespace, from its channels' stats. */
export function services(prefix: string) {
  const channels = listChannels(prefix);
  const live = (head: string) => channels.filter((c) => c.name.startsWith(head) && ownerAlive(c)).length;
  return channels.filter((c) => c.name.endsWith("!call")).map((c: ChannelStat) => {
    const service = c.name.slice(0, -"!call".length);
    return {
      service,
      servers: live(`${service}!ctl.`),
      clients: live(`${service}!reply.`),
      queued: c.depth,
      inProgress: c.inFlight,
      calls: c.counters.released,
    };
  });
}

async function run(command: string, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      prefix: { type: "string" },
      json: { type: "boolean" },
      timeout: { type: "string" },
      count: { type: "string", short: "n" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE[command]);
    return 0;
  }
  const prefix = values.prefix ?? "ferry";
  switch (command) {
    case "call": {
      const [service, method, arg] = positionals;
      if (service === undefined || method === undefined) {
        throw new UsageError("call needs <service> <method>");
      }
      using client = connect(service, { prefix, timeout: ms(values.timeout, 5000) });
      const result = await client.call(method, value(arg));
      console.log(values.json ? json({ service, method, result }) : json(result));
      return 0;
    }
    case "services": {
      const list = services(prefix);
      if (values.json) console.log(json({ prefix, services: list }));
      else if (list.length === 0) console.log(`no services in namespace '${prefix}'`);
      else {
        console.log("service".padEnd(24) + "servers  clients  queued  in progress  calls done");
        for (const s of list) {
          console.log(
            `${s.service.padEnd(24)}${String(s.servers).padStart(7)}  ${String(s.clients).padStart(7)}  ` +
              `${String(s.queued).padStart(6)}  ${String(s.inProgress).padStart(11)}  ${
                String(s.calls).padStart(10)
              }`,
          );
        }
      }
      return 0;
    }
    case "pub": {
      const [topic, text] = positionals;
      if (topic === undefined || text === undefined) throw new UsageError("pub needs <topic> <json>");
      const result = await publish(topic, value(text), { prefix });
      console.log(
        values.json
          ? json({ topic, ...result })
          : `published to ${result.delivered} subscribers (${result.dropped} dropped, ${result.reclaimed} found dead)`,
      );
      return 0;
    }
    case "sub": {
      const [topic] = positionals;
      if (topic === undefined) throw new UsageError("sub needs <topic>");
      const count = values.count === undefined ? Infinity : Number(values.count);
      if (!(count >= 1)) throw new UsageError(`--count must be a number >= 1, not '${values.count}'`);
      using sub = subscribe(topic, { prefix, whenFull: "wait" });
      console.error(`ferry: subscribed to '${topic}' (inbox ${sub.inbox})`); // stdout is for the values
      const stop = () => sub.close();
      Deno.addSignalListener("SIGINT", stop);
      try {
        let n = 0;
        while (n < count) {
          let m;
          try {
            m = await sub.recv({ timeout: ms(values.timeout, Infinity) });
          } catch (error) {
            if (error instanceof FerryError && error.code === "ChannelClosed") return 0;
            throw error;
          }
          console.log(values.json ? json(m) : json(m.data));
          n++;
        }
      } finally {
        Deno.removeSignalListener("SIGINT", stop);
      }
      return 0;
    }
  }
  throw new UsageError(`unknown command '${command}'`);
}

/** Runs a pattern command; undefined when `command` is not one of them. */
export async function patternCommand(command: string, argv: string[]): Promise<number | undefined> {
  if (!Object.hasOwn(USAGE, command)) return undefined;
  try {
    return await run(command, argv);
  } catch (error) {
    const usage = error instanceof UsageError || error instanceof InvalidNameError ||
      error instanceof InvalidOptionError || (error as { code?: string }).code?.startsWith("ERR_PARSE");
    const text = error instanceof Error ? error.message : String(error);
    console.error(`ferry: ${text.replace(/\s*\n\s*/g, " ")}`);
    return usage ? 2 : 1;
  }
}

/** The pattern commands as entries of the command table (cli/commands.ts): each parses its own arguments. */
export const PATTERN_COMMANDS: PassThroughCommand[] = PATTERN_HELP.map(([usage, summary]) => {
  const name = usage.split(" ")[0];
  return {
    name,
    usage,
    summary,
    passThrough: true,
    run: async (argv: string[]) => (await patternCommand(name, argv))!,
  };
});
