// Opens damaged segments and uses them, one case per stdin line, so that a crash or a hang names
// its case. Usage: chaos_corrupt.ts <prefix>. For each line "<name>" it prints "case <name>", then
// one JSON line: {name, open: "ok" | <error code>, ops: [<outcome of each step>]}. A step's outcome is
// "ok", a FerryError code, or "js:<Error name>" for anything else thrown.
// Steps on an opened channel: stat, drain (tryRecv and release, up to 2 x capacity), trySend,
// tryRecv of that message, recv with a short timeout, close.

import { Channel, FerryError } from "../../mod.ts";
import { readCommands } from "./chaos_common.ts";

const [prefix] = Deno.args;

function outcome(f: () => unknown): string {
  try {
    f();
    return "ok";
  } catch (e) {
    return e instanceof FerryError ? e.code : `js:${(e as Error).name}: ${(e as Error).message}`;
  }
}

async function run(name: string) {
  console.log(`case ${name}`);
  let ch: Channel<Uint8Array>;
  try {
    ch = Channel.open<Uint8Array>(name, {
      prefix,
      codec: "raw",
      mode: "async",
      autoRelease: false,
      timeout: 100,
      capacity: 8, // if the damage means "not built yet", the channel is built again at this size
      maxMessageSize: 4096,
    });
  } catch (e) {
    const open = e instanceof FerryError ? e.code : `js:${(e as Error).name}: ${(e as Error).message}`;
    console.log(JSON.stringify({ name, open, ops: [] }));
    return;
  }
  const ops: string[] = [];
  ops.push(outcome(() => ch.stat()));
  ops.push(outcome(() => {
    for (let i = 0; i < 2 * ch.capacity + 2; i++) {
      const m = ch.tryRecv();
      if (m === undefined) break;
      void m.bytes.byteLength;
      m.release();
    }
  }));
  ops.push(outcome(() => ch.trySend(new Uint8Array([1, 2, 3]))));
  ops.push(outcome(() => {
    const m = ch.tryRecv();
    if (m !== undefined) m.release();
  }));
  try {
    (await ch.recv({ timeout: 30 })).release();
    ops.push("ok");
  } catch (e) {
    ops.push(e instanceof FerryError ? e.code : `js:${(e as Error).name}`);
  }
  ops.push(outcome(() => ch.close()));
  console.log(JSON.stringify({ name, open: "ok", ops }));
}

console.log("ready");
const queue: string[] = [];
let wake: (() => void) | undefined;
let eof = false;
readCommands((line) => {
  queue.push(line);
  wake?.();
}).then(() => {
  eof = true;
  wake?.();
});
while (true) {
  const name = queue.shift();
  if (name !== undefined) {
    await run(name);
    continue;
  }
  if (eof) break;
  await new Promise<void>((resolve) => wake = resolve);
}
