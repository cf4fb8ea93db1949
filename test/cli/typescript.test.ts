import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort, startServer, workerdPidsFor, type TestServer } from "../helpers/server.js";
import { cli, cliBackground, json, waitForOutput } from "../helpers/cli.js";

let server: TestServer;
let dir: string;

before(async () => {
  server = await startServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-cli-ts-"));
});
after(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

// Throws at line 4, column 11 (`new Error`), on a call whose query asks for it.
const thrower = `async function handler(request) {
  const url = new URL(request.url);
  if (url.searchParams.get("fail")) {
    throw new Error("boom at four");
  }
  return new Response("fine");
}
`;

// Throws at line 9, column 11 of the TypeScript source.
const typed = `interface Greeting {
  text: string;
  times: number;
}
enum Mode { Loud = "loud", Quiet = "quiet" }
async function handler(request: Request): Promise<Response> {
  const body = (await request.json()) as Partial<Greeting>;
  if (body.times === 0) {
    throw new Error("typed failure");
  }
  const g: Greeting = { text: body.text ?? "hi", times: body.times ?? 1 };
  const mode: Mode = g.times > 1 ? Mode.Loud : Mode.Quiet;
  return Response.json({ said: g.text.repeat(g.times), mode });
}
`;

async function fn(slug: string) {
  const res = await server.call("GET", `/functions/${slug}`);
  return ((await res.json()) as any).data;
}

describe("functions logs shows what was called and where it failed", () => {
  it("each record has its method, path, version and trigger; a failed one its stack", async () => {
    const file = path.join(dir, "thrower.js");
    fs.writeFileSync(file, thrower);
    assert.equal((await cli(server, ["functions", "create", "Thrower", "--file", file])).code, 0);
    assert.equal((await cli(server, ["functions", "deploy", "thrower"])).code, 0);

    const ok = await cli(server, ["functions", "invoke", "thrower", "-X", "GET", "--path", "/a"]);
    assert.equal(ok.code, 0, ok.stderr);
    const bad = await cli(server, [
      "functions",
      "invoke",
      "thrower",
      "--data",
      "{}",
      "--path",
      "/users/7?fail=1",
    ]);
    assert.equal(bad.code, 1);

    const logs = await cli(server, ["functions", "logs", "thrower"]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /✓ 200 {2}GET \/a {2}[\d.]+ ms {2}v1 {2}api /);
    assert.match(logs.stdout, /✗ 500 {2}POST \/users\/7\?fail=1 {2}[\d.]+ ms {2}v1 {2}api /);
    // The stack, indented under its record, names the user's line.
    assert.match(
      logs.stdout,
      /\n {2}✗ Error: boom at four\n {6,}at handler \(function\.js:4:11\)/,
      logs.stdout,
    );
    assert.doesNotMatch(logs.stdout, /workerbase-(main|setup)\.js/);

    const failed = json(await cli(server, ["functions", "logs", "thrower", "--json"]));
    assert.equal(failed.data[0].method, "POST");
    assert.equal(failed.data[0].path, "/users/7?fail=1");
  });

  it("--follow prints the method, path and stack of a new failing call", async () => {
    const follow = cliBackground(server, ["functions", "logs", "thrower", "--follow"]);
    try {
      await waitForOutput(follow.output, /POST \/users\/7/, 5000);
      const bad = await cli(server, ["functions", "invoke", "thrower", "--path", "/again?fail=2"]);
      assert.equal(bad.code, 1);
      await waitForOutput(
        follow.output,
        /POST \/again\?fail=2 .*\n {2}✗ Error: boom at four\n +at handler \(function\.js:4:11\)/,
        5000,
      );
    } finally {
      follow.child.kill("SIGINT");
    }
    assert.equal(await follow.exited, 0);
  });
});

describe("TypeScript functions from the terminal", () => {
  it("functions create from a .ts file makes a TypeScript function that runs", async () => {
    const file = path.join(dir, "typed.ts");
    fs.writeFileSync(file, typed);
    const created = await cli(server, ["functions", "create", "Typed", "--file", file]);
    assert.equal(created.code, 0, created.stderr);
    assert.equal((await fn("typed")).language, "typescript");
    const deployed = await cli(server, ["functions", "deploy", "typed"]);
    assert.equal(deployed.code, 0, deployed.stderr);

    const r = await cli(server, [
      "functions",
      "invoke",
      "typed",
      "--data",
      '{"text":"ab","times":2}',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { said: "abab", mode: "loud" });

    const bad = await cli(server, ["functions", "invoke", "typed", "--data", '{"times":0}']);
    assert.equal(bad.code, 1);
    const logs = await cli(server, ["functions", "logs", "typed", "--status", "failed"]);
    assert.match(logs.stdout, /✗ Error: typed failure\n +at handler \(function\.ts:9:11\)/);

    const got = await cli(server, ["functions", "get", "typed"]);
    assert.match(got.stdout, /language: +typescript/);
  });

  it("--language overrides the extension, and a wrong value is a usage error", async () => {
    const file = path.join(dir, "typed.txt");
    fs.writeFileSync(file, typed);
    const wrong = await cli(server, [
      "functions",
      "create",
      "X",
      "--file",
      file,
      "--language",
      "ts",
    ]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /--language must be javascript or typescript, got "ts"/);
    const made = await cli(server, [
      "functions",
      "create",
      "Typed Text",
      "--file",
      file,
      "--language",
      "typescript",
    ]);
    assert.equal(made.code, 0, made.stderr);
    assert.equal((await fn("typed-text")).language, "typescript");
  });

  it("pull writes index.ts and language: typescript; push round-trips and redeploys a language change", async () => {
    const project = path.join(dir, "project");
    const pulled = await cli(server, ["pull", project]);
    assert.equal(pulled.code, 0, pulled.stderr);
    const typedDir = path.join(project, "functions", "typed");
    assert.deepEqual(fs.readdirSync(typedDir).sort(), ["function.yaml", "index.ts"]);
    assert.equal(fs.readFileSync(path.join(typedDir, "index.ts"), "utf8"), typed);
    const yaml = fs.readFileSync(path.join(typedDir, "function.yaml"), "utf8");
    assert.match(yaml, /^entrypoint: index.ts$/m);
    assert.match(yaml, /^language: typescript$/m);
    const jsYaml = fs.readFileSync(
      path.join(project, "functions", "thrower", "function.yaml"),
      "utf8",
    );
    assert.match(jsYaml, /^entrypoint: index.js$/m);
    assert.doesNotMatch(jsYaml, /language/, "a JavaScript function's file has no language key");

    const clean = await cli(server, ["push", project, "--dry-run"]);
    assert.equal(clean.code, 0, clean.stderr);
    assert.match(clean.stdout, /= typed +unchanged/);
    assert.match(clean.stdout, /= thrower +unchanged/);

    // Turning the JavaScript function into TypeScript: rename the file, add a type.
    const throwerDir = path.join(project, "functions", "thrower");
    fs.rmSync(path.join(throwerDir, "index.js"));
    fs.writeFileSync(
      path.join(throwerDir, "index.ts"),
      `async function handler(request: Request): Promise<Response> {\n  return new Response("typed now");\n}\n`,
    );
    fs.writeFileSync(
      path.join(throwerDir, "function.yaml"),
      jsYaml.replace("entrypoint: index.js", "entrypoint: index.ts"),
    );
    const pushed = await cli(server, ["push", project]);
    assert.equal(pushed.code, 0, pushed.stdout + pushed.stderr);
    assert.match(pushed.stdout, /~ thrower +update code, language; deploy/);
    assert.match(pushed.stdout, /✓ thrower: deployed \(version 2\)/);
    const thrown = await fn("thrower");
    assert.equal(thrown.language, "typescript");
    const r = await cli(server, ["functions", "invoke", "thrower"]);
    assert.equal(r.stdout, "typed now");

    const again = await cli(server, ["push", project, "--dry-run"]);
    assert.match(again.stdout, /= thrower +unchanged/);
  });

  it("push refuses an npm import with the deploy's sentence, naming file and line, and changes nothing", async () => {
    const project = path.join(dir, "imports");
    const folder = path.join(project, "functions", "with-lodash");
    fs.mkdirSync(folder, { recursive: true });
    fs.writeFileSync(path.join(folder, "function.yaml"), "name: With lodash\n");
    fs.writeFileSync(
      path.join(folder, "index.ts"),
      `import type { Thing } from "./types";\n\nimport _ from "lodash";\nasync function handler(request: Request): Promise<Response> {\n  return new Response(_.kebabCase("a b") as string);\n}\n`,
    );
    const pushed = await cli(server, ["push", project]);
    assert.equal(pushed.code, 1);
    assert.match(
      pushed.stderr,
      /^error: \S*functions\/with-lodash\/index\.ts:3: The code imports "lodash" \(line 3\), but a function is one file: bundle it with its imports first, for example `npx esbuild index\.js --bundle/m,
    );
    assert.equal(pushed.stderr.trim().split("\n").length, 1, pushed.stderr);
    const res = await server.call("GET", "/functions/with-lodash");
    assert.equal(res.status, 404, "nothing was created");
  });
});

describe("workerbase dev with TypeScript and imports", () => {
  it("runs a .ts file, reports its syntax error and stack at the .ts lines", async () => {
    const devDir = path.join(dir, "dev");
    fs.mkdirSync(devDir);
    const file = path.join(devDir, "handler.ts");
    fs.writeFileSync(file, typed);
    const data = path.join(devDir, "state");
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const dev = cliBackground(
      undefined,
      ["dev", "handler.ts", "--port", String(port), "--data", data],
      {
        cwd: devDir,
      },
    );
    try {
      await waitForOutput(dev.output, /✓ loaded handler\.ts \(version 1/, 30_000);
      const res = await fetch(url, { method: "POST", body: '{"text":"x","times":3}' });
      assert.deepEqual(await res.json(), { said: "xxx", mode: "loud" });

      const failed = await fetch(`${url}/oops`, { method: "POST", body: '{"times":0}' });
      assert.equal(failed.status, 500);
      await waitForOutput(
        dev.output,
        /POST \/oops → 500 .*\n {2}✗ Error: typed failure\n +at handler \(handler\.ts:9:11\)/,
      );

      // A type-level syntax error names the .ts line and column; the last good version serves.
      fs.writeFileSync(file, typed.replace("times: number;", "times: number = ;"));
      await waitForOutput(
        dev.output,
        /error: handler\.ts:3:\d+: SyntaxError: .*\n.*the last good version keeps serving/,
      );
      const still = await fetch(url, { method: "POST", body: "{}" });
      assert.deepEqual(await still.json(), { said: "hi", mode: "quiet" });
    } finally {
      dev.child.kill("SIGINT");
    }
    assert.equal(await dev.exited, 0, dev.output());
    assert.deepEqual(workerdPidsFor(data), []);
  });

  it("refuses an npm import with the deploy's sentence before uploading", async () => {
    const devDir = path.join(dir, "dev-lodash");
    fs.mkdirSync(devDir);
    fs.writeFileSync(
      path.join(devDir, "app.js"),
      `import _ from "lodash";\nasync function handler() {\n  return new Response(_.kebabCase("a b"));\n}\n`,
    );
    const data = path.join(devDir, "state");
    const port = await freePort();
    const dev = cliBackground(
      undefined,
      ["dev", "app.js", "--port", String(port), "--data", data],
      {
        cwd: devDir,
      },
    );
    try {
      await waitForOutput(
        dev.output,
        /error: app\.js:1: The code imports "lodash" \(line 1\), but a function is one file: bundle it with its imports first, for example `npx esbuild index\.js --bundle --format=esm/,
        30_000,
      );
      await waitForOutput(dev.output, /Ctrl-C stops/);
      assert.doesNotMatch(dev.output(), /✓ loaded/);
      const res = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(res.status, 503);
      assert.match(
        await res.text(),
        /app\.js has no working version yet: app\.js:1: The code imports "lodash"/,
      );

      // Fixing the file loads it.
      fs.writeFileSync(
        path.join(devDir, "app.js"),
        `async function handler() {\n  return new Response("no imports");\n}\n`,
      );
      await waitForOutput(dev.output, /✓ reloaded app\.js \(version 1/, 10_000);
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "no imports");
    } finally {
      dev.child.kill("SIGINT");
    }
    assert.equal(await dev.exited, 0, dev.output());
  });
});
