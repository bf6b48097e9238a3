// A bridge as its own process, so tests can SIGKILL it: `cli.ts bridge` with the given arguments.
// Tests pass --json and read its "ready" line, then its "closed" line after SIGTERM.

import { bridgeCommand } from "../../cli/bridge_run.ts";

Deno.exit(await bridgeCommand(Deno.args));
