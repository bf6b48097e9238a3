// The command table: cli.ts dispatches on it and the overview lists it in this order. A new
// command is a module under cli/ exporting a Command, and one line here.

import { bench } from "./bench.ts";
import { bridge } from "./bridge.ts";
import type { AnyCommand } from "./command.ts";
import { gc } from "./gc.ts";
import { group } from "./group.ts";
import { ls } from "./ls.ts";
import { PATTERN_COMMANDS } from "./patterns.ts";
import { recv } from "./recv.ts";
import { rm } from "./rm.ts";
import { send } from "./send.ts";
import { stat } from "./stat.ts";
import { tail } from "./tail.ts";

export const COMMANDS: readonly AnyCommand[] = [
  send,
  recv,
  tail,
  stat,
  ls,
  rm,
  gc,
  group,
  ...PATTERN_COMMANDS,
  bridge,
  bench,
];

export function findCommand(name: string): AnyCommand | undefined {
  return COMMANDS.find((c) => c.name === name);
}
