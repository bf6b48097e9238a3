// Runs one group call in a process whose core is the fault-injection build, with FERRY_FAULT naming a
// kill point (core/src/fault.rs): the process aborts at that point, mid-call.
// Usage (FERRY_LIB and FERRY_FAULT set by the test): group_fault.ts <prefix> <groupMemory> <add|members>
// Prints "survived" if it did not die.

import { Namespace } from "../../mod.ts";

const [prefix, memoryText, call] = Deno.args;
const namespace = Namespace.connect({ prefix, groupMemory: Number(memoryText) });
if (call === "add") namespace.groupAdd("g", "added");
else namespace.groupMembers("g");
console.log("survived");
