// Opens channel handles until the process runs out of file descriptors (the test runs it under a
// low `ulimit -n`), then prints the error it got as one JSON line. Usage: fd_exhaust.ts <prefix>

import { Channel, FerryError, SystemError } from "../../mod.ts";

const [prefix] = Deno.args;
const handles: Channel[] = [];
let outcome: Record<string, unknown> = { error: "none" };
try {
  for (let i = 0; i < 10_000; i++) {
    handles.push(Channel.open(`fd${i % 32}`, { prefix, mode: "async", capacity: 1, maxMessageSize: 64 }));
  }
} catch (e) {
  outcome = {
    error: e instanceof Error ? e.constructor.name : String(e),
    code: e instanceof FerryError ? e.code : undefined,
    errno: e instanceof SystemError ? e.errno : undefined,
    errnoName: e instanceof SystemError ? e.errnoName : undefined,
    message: e instanceof Error ? e.message : undefined,
    opened: handles.length,
  };
}
for (const h of handles) h.close();
// The handles closed, so descriptors are free again and a new open works.
try {
  Channel.open("fd0", { prefix, mode: "async", capacity: 1, maxMessageSize: 64 }).close();
  outcome.afterClose = "ok";
} catch (e) {
  outcome.afterClose = e instanceof Error ? e.message : String(e);
}
console.log(JSON.stringify(outcome));
