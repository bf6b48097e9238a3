// ferry run as a user runs it: with only the permission flags the README names, from a checkout
// whose path has spaces, and with the benchmark writing where it is told.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Scope } from "./helpers.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const DENO = Deno.execPath();

async function run(
  args: string[],
  cwd = REPO_ROOT,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(DENO, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("two programs run with --allow-ffi alone send and receive msgpack values in ack mode", async () => {
  await using s = new Scope();
  const worker = fileURLToPath(new URL("./workers/ffi_only.ts", import.meta.url));
  const receiver = new Deno.Command(DENO, {
    args: ["run", "--allow-ffi", worker, s.prefix, "jobs", "recv", "3"],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const sender = await run(["run", "--allow-ffi", worker, s.prefix, "jobs", "send", "3"]);
  const received = await receiver.output();
  const stderr = new TextDecoder().decode(received.stderr);
  assert.equal(sender.code, 0, sender.stderr);
  assert.equal(received.code, 0, stderr);
  assert.deepEqual(
    new TextDecoder().decode(received.stdout).trim().split("\n"),
    ["ready", "0:0:0,1:1:100000000000000000000,2:2:200000000000000000000"],
  );
});

Deno.test("ferry works from a directory whose path has spaces in it", async () => {
  await using s = new Scope();
  const dir = `${await s.tempDir()}/a checkout with spaces`;
  // The library's files and the built core, laid out as in the repository.
  for (const sub of ["src", "ffi", "core/target/release"]) {
    await Deno.mkdir(`${dir}/${sub}`, { recursive: true });
  }
  // Recursively: src/ has folders of its own (src/patterns/).
  const copyTree = async (sub: string): Promise<void> => {
    for (const entry of Deno.readDirSync(`${REPO_ROOT}/${sub}`)) {
      const path = `${sub}/${entry.name}`;
      if (entry.isFile) await Deno.copyFile(`${REPO_ROOT}/${path}`, `${dir}/${path}`);
      else if (entry.isDirectory) {
        await Deno.mkdir(`${dir}/${path}`, { recursive: true });
        await copyTree(path);
      }
    }
  };
  for (const sub of ["src", "ffi"]) await copyTree(sub);
  for (const file of ["mod.ts", "deno.json", "core/target/release/libferry_core.so"]) {
    await Deno.copyFile(`${REPO_ROOT}/${file}`, `${dir}/${file}`);
  }
  await Deno.symlink(`${REPO_ROOT}/node_modules`, `${dir}/node_modules`);
  await Deno.writeTextFile(
    `${dir}/main.ts`,
    `import { Channel } from "./mod.ts";
     using ch = Channel.open("spaced", { prefix: "${s.prefix}", mode: "async" });
     ch.trySend({ hello: "there" });
     console.log(JSON.stringify(ch.tryRecv()?.data));`,
  );
  const r = await run(["run", "--allow-ffi", `${dir}/main.ts`], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), '{"hello":"there"}');
});

Deno.test("bench --json writes to a relative path with spaces, creating its directory", async () => {
  await using s = new Scope();
  const cwd = `${await s.tempDir()}/bench here`;
  await Deno.mkdir(cwd);
  const r = await run([
    "run",
    "-A",
    `${REPO_ROOT}/cli.ts`,
    "bench",
    "--quick",
    "--only",
    "native",
    "--json",
    "out dir/r.json",
  ], cwd);
  assert.equal(r.code, 0, r.stderr);
  const written = JSON.parse(await Deno.readTextFile(`${cwd}/out dir/r.json`));
  assert.ok(Array.isArray(written.rows) && written.rows.length > 0, "the figures were written");
  assert.ok((await Deno.stat(`${cwd}/out dir/r.svg`)).isFile, "the chart was written next to them");
});

Deno.test("a Deno project outside the repository imports ferry by path, with no configuration of its own", async () => {
  await using s = new Scope();
  const project = await Deno.makeTempDir({ prefix: "ferry_user_project_" });
  try {
    const mod = new URL("../mod.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${project}/main.ts`,
      `import { Channel } from "${mod}";
       using ch = Channel.open("outside", { prefix: "${s.prefix}", mode: "async" });
       await ch.send({ from: "elsewhere", n: 42n });
       const { data } = await ch.recv();
       console.log(JSON.stringify(data, (_, v) => typeof v === "bigint" ? \`\${v}n\` : v));`,
    );
    const r = await run(["run", "--allow-ffi", "main.ts"], project);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '{"from":"elsewhere","n":"42n"}');
  } finally {
    await Deno.remove(project, { recursive: true });
  }
});

Deno.test("a core library that is not there: one clear error that says how to build it or set FERRY_LIB", async () => {
  await using s = new Scope();
  const out = await new Deno.Command(DENO, {
    args: [
      "eval",
      `import { Channel } from "${new URL("../mod.ts", import.meta.url).href}";
                    Channel.open("x", { prefix: "${s.prefix}" });`,
    ],
    env: { FERRY_LIB: "/nonexistent/libferry_core.so" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.notEqual(out.code, 0);
  assert.match(stderr, /cannot load the core library FERRY_LIB=\/nonexistent\/libferry_core.so/);
  assert.match(stderr, /deno task build/);
  assert.doesNotMatch(stderr, /Could not open library: Could not open library/);
});
