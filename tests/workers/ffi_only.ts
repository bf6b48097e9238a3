// Run with `--allow-ffi` and nothing else, as the README says a program using ferry needs: sends or
// receives msgpack values on a channel. Usage: ffi_only.ts <prefix> <name> send|recv <count>

import { Channel } from "../../mod.ts";

const [prefix, name, role, countText] = Deno.args;
const count = Number(countText);
using ch = Channel.open(name, { prefix, mode: "ack", timeout: 20_000 });
if (role === "send") {
  for (let i = 0; i < count; i++) await ch.send({ i, at: new Date(i), big: BigInt(i) * 10n ** 20n });
  console.log("sent");
} else {
  console.log("ready");
  const got = [];
  for (let i = 0; i < count; i++) {
    const { data } = await ch.recv({ timeout: 20_000 }) as { data: { i: number; at: Date; big: bigint } };
    got.push(`${data.i}:${data.at.getTime()}:${data.big}`);
  }
  console.log(got.join(","));
}
