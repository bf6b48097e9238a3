// `bench [args]`: the benchmark suite; its arguments, --help included, go to bench/main.ts.

import type { PassThroughCommand } from "./command.ts";
import { EXIT } from "./errors.ts";

export const bench: PassThroughCommand = {
  name: "bench",
  usage: "bench [args]",
  summary: "run the benchmark (arguments, including --help, go to bench/main.ts)",
  passThrough: true,
  async run(argv: string[]): Promise<number> {
    // Imported only for this command, so the others start without loading the benchmark.
    const { runBench } = await import("../bench/main.ts");
    await runBench(argv);
    return EXIT.ok;
  },
};
