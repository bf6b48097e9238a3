// Receives `count` messages on a zero-copy channel and reports, for each, whether its view held the
// expected pattern, and what using the view after release did. Usage: <prefix> <name> <count>

import { Channel } from "../../mod.ts";
import { checkPayload } from "../helpers.ts";

const [prefix, name, count] = Deno.args;
const channel = Channel.open<Uint8Array>(name, { prefix, codec: "raw", zeroCopy: true, mode: "async" });
console.log("ready");
for (let i = 0; i < Number(count); i++) {
  const msg = await channel.recv({ timeout: 20_000 });
  const kept = msg.view;
  const seq = checkPayload(kept); // throws on a torn or wrong payload
  const size = kept.byteLength;
  const copied = msg.bytes; // a private copy, still valid after release
  msg.release();
  let afterRelease = "no error";
  try {
    msg.view;
  } catch (e) {
    afterRelease = (e as { code?: string }).code ?? String(e);
  }
  console.log(
    JSON.stringify({
      seq,
      size,
      keptLength: kept.length,
      copyOk: checkPayload(copied) === seq,
      afterRelease,
    }),
  );
}
channel.close();
