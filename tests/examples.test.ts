// Every program in examples/ runs here, with the command line its header gives, so none can rot.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { natsServerPath } from "../bench/nats_server.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The `deno run ...` line an example's header tells readers to type. */
function commandOf(file: string): string[] {
  const text = Deno.readTextFileSync(`${REPO_ROOT}/examples/${file}`);
  const line = text.split("\n").find((l) => /^\/\/\s+deno run /.test(l));
  assert.ok(line, `examples/${file} names the command that runs it`);
  return line.replace(/^\/\/\s+deno /, "").trim().split(/\s+/);
}

async function runExample(file: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: commandOf(file),
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `examples/${file} failed:\n${stdout}\n${new TextDecoder().decode(out.stderr)}`);
  return stdout;
}

Deno.test("examples/job_queue.ts: every job is done once, and the one whose worker died is retried", async () => {
  const stdout = await runExample("job_queue.ts");
  assert.match(stdout, /job 7: its worker died \(PeerDied\)/);
  assert.match(stdout, /30 jobs done, 1 retried after a worker died; sum of squares 8555/);
});

Deno.test({
  name: "examples/bridge.ts: jobs cross a NATS bridge between two namespaces, acked end to end",
  // The example starts its own nats-server; .ci/run installs it, a developer machine may not have it.
  ignore: natsServerPath() === undefined,
  async fn() {
    const stdout = await runExample("bridge.ts");
    assert.match(stdout, /10 jobs done across the bridge; sum of squares 385/);
    assert.match(stdout, /east's jobs route: forwarded 10, failed 0/);
  },
});
