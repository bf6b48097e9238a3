// `bridge [args]`: connects channels to NATS; its arguments, --help included, go to
// cli/bridge_run.ts, which is loaded only for this command (the NATS client costs ~65 ms to load).

import type { PassThroughCommand } from "./command.ts";

export const bridge: PassThroughCommand = {
  name: "bridge",
  usage: "bridge --nats URL [--out ch=subject:mode] [--in subject=ch:mode]",
  summary: "connect this namespace's channels to NATS subjects (see bridge --help)",
  passThrough: true,
  async run(argv: string[]): Promise<number> {
    const { bridgeCommand } = await import("./bridge_run.ts");
    return await bridgeCommand(argv);
  },
};
