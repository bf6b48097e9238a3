// The patterns' commands of the ferry command line: call a service, list services, publish and
// subscribe. They are entries of the command table (cli/commands.ts); each parses its own arguments
// (node:util parseArgs) and throws for errors, which cli.ts prints as one line with its exit code
// (cli/errors.ts). Values are read as `send` reads them (cli/values.ts): JSON, or text with --string.

import { flag, type OptionSpec, parse, prefixOf, str } from "./args.ts";
import type { PassThroughCommand } from "./command.ts";
import { type ChannelStat, connect, FerryError, listChannels, publish, subscribe } from "../mod.ts";
import { ownerAlive } from "../src/patterns/private_channels.ts";
import { EXIT, UsageError, usageError } from "./errors.ts";
import { print, toJson as json } from "./output.ts";
import { argumentValue } from "./values.ts";

/** One line per command for `cli.ts --help`. */
export const PATTERN_HELP = [
  ["call <service> <method> [<json>]", "call a service's method once with a JSON value and print its result"],
  ["services", "services of a namespace: servers, clients, calls queued and in progress"],
  ["pub <topic> <json>", "publish one JSON value (text with --string) to a topic's subscribers"],
  [
    "sub <topic> [--count N]",
    "subscribe (to a topic or a pattern: prices.*, prices.>) and print each value as a JSON line",
  ],
];

const USAGE: Record<string, string> = {
  call:
    `Usage: deno run -A cli.ts call <service> <method> [<json>] [--string] [--timeout ms] [--prefix p] [--json]
Calls <method> of <service> with <json> as its argument (none: no argument) and prints the result as
JSON. <json> is one JSON value (42, '"hello"', '{"a":1}'); text that is not JSON is a usage error
naming the column where it stops being JSON (exit 2), and --string passes the text itself as a
string. A handler's error prints its code and message, exit 1.
--json prints {"service", "method", "result"}; errors are one line on stderr.`,
  services: `Usage: deno run -A cli.ts services [--prefix p] [--json]
Lists the services of the namespace from their channels, without joining any: live servers (their
control channels), live clients (their reply channels), calls queued (not yet taken) and calls in
progress (taken by a server, not yet answered).`,
  pub: `Usage: deno run -A cli.ts pub <topic> <json> [--string] [--prefix p] [--json]
Publishes one JSON value to every subscriber of <topic> now and prints how many got it, dropped it
(full "drop" inbox) or were found dead. Text that is not JSON is a usage error naming the column
where it stops being JSON (exit 2); --string publishes the text itself as a string.`,
  sub: `Usage: deno run -A cli.ts sub <topic> [--count N] [--timeout ms] [--prefix p] [--json]
Subscribes to <topic> and prints each value published afterwards as a JSON line (with --json, a line
{"topic", "data", "headers", "publisher"}), until --count values or Ctrl-C. The inbox is removed on exit.
<topic> may be a pattern: * stands for one token, > (last) for the rest (prices.*, prices.>).`,
};

function ms(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (text === "inf" || text === "Infinity") return Infinity;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) {
    throw new UsageError(`--timeout must be milliseconds or inf, not '${text}'`);
  }
  return n;
}

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

/** The options every pattern command accepts (each uses those its usage names). */
const OPTIONS: Record<string, OptionSpec> = {
  prefix: { type: "string", help: 'namespace (default: $FERRY_PREFIX, else "ferry")' },
  json: { type: "boolean", help: "print JSON" },
  timeout: { type: "string", help: "milliseconds, or inf" },
  count: { type: "string", short: "n", help: "values to print" },
  string: { type: "boolean", help: "the value is text, not JSON" },
  help: { type: "boolean", short: "h", help: "this help" },
};

async function run(command: string, argv: string[]): Promise<number> {
  // As send parses its arguments: a negative number is a value, not an option.
  const args = parse(command, argv, OPTIONS);
  const positionals = args.positionals;
  if (flag(args, "help")) {
    print(USAGE[command]);
    return EXIT.ok;
  }
  const prefix = prefixOf(args); // --prefix, else FERRY_PREFIX, as every other command
  switch (command) {
    case "call": {
      const [service, method, text] = positionals;
      if (service === undefined || method === undefined) throw usageError("call", "give <service> <method>");
      // Read before connecting: a bad value must not create the service's request channel.
      const arg = text === undefined ? undefined : argumentValue("call", text, flag(args, "string"));
      using client = connect(service, { prefix, timeout: ms(str(args, "timeout"), 5000) });
      const result = await client.call(method, arg);
      print(flag(args, "json") ? json({ service, method, result }) : json(result));
      return EXIT.ok;
    }
    case "services": {
      const list = services(prefix);
      if (flag(args, "json")) print(json({ prefix, services: list }));
      else if (list.length === 0) print(`no services in namespace '${prefix}'`);
      else {
        print("service".padEnd(24) + "servers  clients  queued  in progress  calls done");
        for (const s of list) {
          print(
            `${s.service.padEnd(24)}${String(s.servers).padStart(7)}  ${String(s.clients).padStart(7)}  ` +
              `${String(s.queued).padStart(6)}  ${String(s.inProgress).padStart(11)}  ${
                String(s.calls).padStart(10)
              }`,
          );
        }
      }
      return EXIT.ok;
    }
    case "pub": {
      const [topic, text] = positionals;
      if (topic === undefined || text === undefined) {
        throw usageError("pub", "give <topic> and a JSON value (text with --string)");
      }
      const result = await publish(topic, argumentValue("pub", text, flag(args, "string")), { prefix });
      print(
        flag(args, "json")
          ? json({ topic, ...result })
          : `published to ${result.delivered} subscribers (${result.dropped} dropped, ${result.reclaimed} found dead)`,
      );
      return EXIT.ok;
    }
    case "sub": {
      const [topic] = positionals;
      if (topic === undefined) throw usageError("sub", "give <topic>");
      const countText = str(args, "count");
      const count = countText === undefined ? Infinity : Number(countText);
      if (!(count >= 1)) throw new UsageError(`--count must be a number >= 1, not '${countText}'`);
      using sub = subscribe(topic, { prefix, whenFull: "wait" });
      console.error(`ferry: subscribed to '${topic}' (inbox ${sub.inbox})`); // stdout is for the values
      const stop = () => sub.close();
      Deno.addSignalListener("SIGINT", stop);
      try {
        let n = 0;
        while (n < count) {
          let m;
          try {
            m = await sub.recv({ timeout: ms(str(args, "timeout"), Infinity) });
          } catch (error) {
            if (error instanceof FerryError && error.code === "ChannelClosed") return EXIT.ok;
            throw error;
          }
          print(flag(args, "json") ? json(m) : json(m.data));
          n++;
        }
      } finally {
        Deno.removeSignalListener("SIGINT", stop);
      }
      return EXIT.ok;
    }
  }
  throw new UsageError(`unknown command '${command}'`);
}

/** The pattern commands as entries of the command table (cli/commands.ts): each parses its own arguments. */
export const PATTERN_COMMANDS: PassThroughCommand[] = PATTERN_HELP.map(([usage, summary]) => {
  const name = usage.split(" ")[0];
  return {
    name,
    usage,
    summary,
    passThrough: true,
    run: (argv: string[]) => run(name, argv),
  };
});
