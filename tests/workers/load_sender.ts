// Load sender. Usage: load_sender.ts <prefix> <name> <tag> <count>. Prints "ready", waits for "go",
// sends [tag, i] for i = 0..count-1 in async mode, prints "done <count>", stays open until stdin closes.

import { Channel } from "../../mod.ts";
import { stdinLines } from "../helpers.ts";

const [prefix, name, tagText, countText] = Deno.args;
const tag = Number(tagText);
const count = Number(countText);
const channel = Channel.open(name, { prefix, mode: "async" });
const commands = stdinLines();

console.log("ready");
if ((await commands.next()).value !== "go") Deno.exit(2);
for (let i = 0; i < count; i++) await channel.send([tag, i], { timeout: 60_000 });
console.log(`done ${count}`);
await commands.next();
channel.close();
