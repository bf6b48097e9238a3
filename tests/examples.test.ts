// Every program in examples/ runs here, with the command line its header gives, so none can rot.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

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

Deno.test("examples/rpc.ts: a call, a remote error with its code, and a stream", async () => {
  const stdout = await runExample("rpc.ts");
  assert.match(stdout, /add: 1 \+ 2 = 3/);
  assert.match(stdout, /fail: RemoteError DivByZero/);
  assert.match(stdout, /count: 1 2 3 4 5/);
});

Deno.test("examples/pubsub.ts: each of two subscribers gets every price", async () => {
  const stdout = await runExample("pubsub.ts");
  assert.equal(stdout.match(/published [\d.]+ to 2 subscribers/g)?.length, 3);
  assert.match(stdout, /6 deliveries/);
});

Deno.test("examples/demux.ts: each key reaches its consumer in order, the rest the default handler", async () => {
  const stdout = await runExample("demux.ts");
  const lines = (key: string) => stdout.split("\n").filter((l) => l.startsWith(key));
  assert.deepEqual(lines("orders"), [1, 2, 3].map((i) => `orders: {"order":${i}}`));
  assert.deepEqual(lines("users"), [1, 2, 3].map((i) => `users: {"user":"u${i}"}`));
  assert.deepEqual(lines("other"), [1, 2, 3].map((i) => `other (audit): {"entry":${i}}`));
});

Deno.test("examples/select.ts: merge takes every message of both channels", async () => {
  assert.match(await runExample("select.ts"), /merged 7 messages: 5 from fast, 2 from slow/);
});

Deno.test("examples/pool.ts: a worker dies mid-job, is replaced, and the pool drains", async () => {
  const stdout = await runExample("pool.ts");
  assert.match(stdout, /20 jobs done, sum of squares 2470; 1 redelivered, 1 worker restarted/);
  assert.match(stdout, /workers exited: 1 0 0 0/);
});
