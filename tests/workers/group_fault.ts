// Runs one group call in a process whose core is the fault-injection build, with FERRY_FAULT naming a
// kill point (core/src/fault.rs): the process aborts at that point, mid-call.
// Usage (FERRY_LIB and FERRY_FAULT set by the test):
//   group_fault.ts <prefix> <groupMemory> <add|add-process|members|close>
//   add: an expiring membership g/added; add-process: a process one; members: a scan of g;
//   close: holds g/added and g/added-2 for the process, then closes the Namespace (ending both)
// Prints "survived" if it did not die.

import { Namespace } from "../../mod.ts";

const [prefix, memoryText, call] = Deno.args;
const namespace = Namespace.connect({ prefix, groupMemory: Number(memoryText) });
if (call === "add") namespace.groupAdd("g", "added");
else if (call === "add-process") namespace.groupAdd("g", "added", { lifetime: "process" });
else if (call === "close") {
  namespace.groupAdd("g", "added", { lifetime: "process" });
  namespace.groupAdd("g", "added-2", { lifetime: "process" });
} else namespace.groupMembers("g");
namespace.close();
console.log("survived");
