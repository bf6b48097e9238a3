// One call of the library in a process of its own, for the trust tests: a call that must not block
// (open with a timeout, stat, scan, gc) is run here so that a regression hangs this child, which the
// test's hang guard kills, and not the test process; and a call made as another user runs here under
// setpriv. Usage: trust_probe.ts <prefix> <op> <name> [options as JSON]
//   open     Channel.open(name, options); trySend(options.send) if given; close
//   connect  Namespace.connect(options); groupAdd("g", name); close
//   stat     Channel.stat(name, options)
//   scan     scanChannels(prefix, options): [{name, state}] and the skipped codes
//   gc       gc(prefix, options)
// Prints one JSON line: {ok: true, ...result} or {error: <class name>, code, message}.

import { Channel, gc, Namespace, scanChannels } from "../../mod.ts";

const [prefix, op, name, optionsJson = "{}"] = Deno.args;
const options = { ...JSON.parse(optionsJson), prefix };

function run(): Record<string, unknown> {
  switch (op) {
    case "open": {
      const { send, ...open } = options;
      const channel = Channel.open(name, { mode: "async", ...open });
      if (send !== undefined) channel.trySend(send);
      channel.close();
      return {};
    }
    case "connect": {
      const namespace = Namespace.connect(options);
      namespace.groupAdd("g", name);
      namespace.close();
      return {};
    }
    case "stat": {
      const stat = Channel.stat(name, options);
      return { state: stat.state, depth: stat.depth, bytes: stat.bytes };
    }
    case "scan": {
      const scan = scanChannels(prefix, options);
      return {
        channels: scan.channels.map((s) => ({ name: s.name, state: s.state })),
        skipped: scan.skipped.map((s) => ({ name: s.name, code: s.code })),
      };
    }
    case "gc":
      return { removed: gc(prefix, options) };
    default:
      throw new Error(`unknown op ${op}`);
  }
}

try {
  console.log(JSON.stringify({ ok: true, ...run() }));
} catch (error) {
  const { name, message, code } = error as Error & { code?: string };
  console.log(JSON.stringify({ error: name, code, message }));
}
