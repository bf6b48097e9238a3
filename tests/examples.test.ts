// Every program in examples/ runs here, with the command line its header gives, and so does the
// README's quick start, so none can rot.

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

Deno.test("examples/fan_out.ts: every cache gets each flush, and a killed cache leaves the group at once", async () => {
  const stdout = await runExample("fan_out.ts");
  for (const key of ["user:1", "user:2", "user:3"]) {
    assert.match(stdout, new RegExp(`flush ${key}: released by 3, skipped 0, failed 0`));
  }
  assert.match(stdout, /after a cache was killed, flush user:4: released by 2, failed 0/);
  assert.match(stdout, /members now: 2/);
});

Deno.test("the README's quick start runs as written: the worker prints the job the producer's ack send delivered", async () => {
  const readme = await Deno.readTextFile(`${REPO_ROOT}/README.md`);
  const section = readme.slice(readme.indexOf("\n## Quick start\n"));
  const block = /```ts\n([\s\S]*?)```/.exec(section)![1];
  // The block holds two programs, each headed by `// <file>: deno run <flags> <file>`.
  const programs = block.split(/(?=^\/\/ \w+\.ts: deno run )/m).map((text) => {
    const [, file, command] = /^\/\/ (\w+\.ts): deno (run .*)$/m.exec(text)!;
    return { file, args: command.trim().split(/\s+/), text };
  });
  assert.deepEqual(programs.map((p) => p.file), ["worker.ts", "producer.ts"]);
  const dir = await Deno.makeTempDir({ dir: REPO_ROOT, prefix: ".quickstart_" });
  try {
    for (const p of programs) {
      await Deno.writeTextFile(`${dir}/${p.file}`, p.text.replaceAll('"./mod.ts"', '"../mod.ts"'));
    }
    const prefix = `qs${Deno.pid}`;
    // The README's programs use the default namespace; this run gives them one of their own.
    for (const p of programs) {
      const path = `${dir}/${p.file}`;
      const text = await Deno.readTextFile(path);
      await Deno.writeTextFile(
        path,
        text.replaceAll('Channel.open("jobs")', `Channel.open("jobs", { prefix: "${prefix}" })`),
      );
    }
    const worker = new Deno.Command(Deno.execPath(), {
      args: programs[0].args,
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const producer = await new Deno.Command(Deno.execPath(), {
      args: programs[1].args,
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(producer.code, 0, new TextDecoder().decode(producer.stderr));
    const reader = worker.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let printed = "";
    while (!printed.includes("\n")) printed += (await reader.read()).value ?? "";
    assert.equal(printed.trim(), 'resizing { id: 1, task: "resize" }');
    reader.releaseLock();
    worker.kill();
    await worker.status;
    await worker.stderr.cancel();
    await worker.stdout.cancel().catch(() => {});
    // The channel and the namespace's store of shared msgpack shapes.
    for (const file of [`${prefix}.jobs`, `${prefix}~structures`]) {
      try {
        Deno.removeSync(`/dev/shm/${file}`);
      } catch { /* removed already */ }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
