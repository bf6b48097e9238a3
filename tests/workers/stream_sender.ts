// Sends self-checking raw payloads (see patternPayload: payload i carries seq i) with sendSync in a
// loop until it is killed. Payloads are 64 to 128 KiB, except payload <bigSeq>, which is 16 MiB:
// just before writing that one it prints "writing <bigSeq>", so the test can kill it mid-write.
// Usage: stream_sender.ts <prefix> <name> <bigSeq>

import { Channel } from "../../mod.ts";
import { BIG_PAYLOAD_BYTES, patternPayload } from "../helpers.ts";

const [prefix, name, bigSeqText] = Deno.args;
const bigSeq = Number(bigSeqText);
const channel = Channel.open(name, { prefix, codec: "raw", mode: "async" });

console.log("ready");
for (let seq = 0;; seq++) {
  const big = seq === bigSeq;
  const payload = patternPayload(seq, big ? BIG_PAYLOAD_BYTES : 4 * (16_384 + (seq * 7_919) % 16_384));
  if (big) console.log(`writing ${seq}`);
  channel.sendSync(payload, { timeout: 60_000 });
}
