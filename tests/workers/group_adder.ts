// A process that dies while adding to a group: the test SIGKILLs it, then checks the group table.
// Usage: group_adder.ts <prefix> <group> <how> <groupMemory>
//   how "loop":  adds and discards <group>/c0..c7 in a tight loop, printing "progress" every 25 calls,
//                until it is killed (so the kill lands at an arbitrary instruction of some add)
//   how "stall": claims a table entry and writes half of its names through the core's test hook
//                (an add stopped between its claim and its publish; FERRY_FAULT_LIB names a core built
//                with the `testing` feature), prints "claimed", and waits to
//                be killed: the deterministic "killed mid-write"
// Prints "ready" once connected.

import { LIFETIME_EXPIRY, NO_TIMEOUT, OPEN_REPORT_LEN } from "../../ffi/status.ts";
import { AddStop, testingCore } from "../../ffi/testing.ts";
import { Namespace } from "../../mod.ts";
import { stdinLines } from "../helpers.ts";

const [prefix, group, how, memoryText] = Deno.args;
const namespace = Namespace.connect({ prefix, groupMemory: Number(memoryText) });
const encoder = new TextEncoder();
console.log("ready");

if (how === "loop") {
  for (let i = 0;; i++) {
    const channel = `c${i % 8}`;
    if (i % 3 === 2) namespace.groupDiscard(group, channel);
    else namespace.groupAdd(group, channel);
    if (i % 25 === 24) console.log("progress");
  }
} else if (how === "stall") {
  // A handle of its own, so its entry lock is held by this process's file description; opened
  // through the testing build (FERRY_FAULT_LIB, inherited from the test), whose hook it calls.
  const lib = testingCore(Deno.env.get("FERRY_FAULT_LIB")!);
  const p = encoder.encode(prefix);
  const none = new Uint32Array(0);
  const err = new Int32Array(OPEN_REPORT_LEN);
  const table = lib.ferry_group_open(p, p.length, Number(memoryText), 0o600, NO_TIMEOUT, none, 0, err);
  const g = encoder.encode(group);
  const c = encoder.encode("torn-channel-name-that-is-long-enough-to-span-several-words");
  const st = lib.ferry_group_debug_add(table, g, g.length, c, c.length, 0n, LIFETIME_EXPIRY, AddStop.CLAIMED);
  console.log(st === 0 ? "claimed" : `failed ${st}`);
  for await (const _ of stdinLines()) {
    // wait for the kill
  }
} else {
  throw new Error(`unknown how ${how}`);
}
