import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { bin, freePort, startServer, type TestServer } from "../helpers/server.js";
import { cli, cliBackground, cliEnv, json, waitForOutput } from "../helpers/cli.js";

const echo = `async function handler(request, env) {
  const url = new URL(request.url);
  console.log("echo", request.method, url.pathname);
  const status = url.searchParams.get("status");
  if (status) return new Response("nope", { status: Number(status) });
  return Response.json({
    method: request.method,
    path: url.pathname,
    query: url.search,
    header: request.headers.get("x-test"),
    type: request.headers.get("content-type"),
    body: await request.text(),
  });
}
`;

let server: TestServer;
let dir: string;

before(async () => {
  server = await startServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-cli-fn-"));
  fs.writeFileSync(path.join(dir, "echo.js"), echo);
});
after(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("workerbase usage", () => {
  it("--help lists every command of the contract", async () => {
    const r = await cli(undefined, ["--help"]);
    assert.equal(r.code, 0);
    for (const command of [
      "serve",
      "functions list",
      "functions get",
      "functions create",
      "functions update",
      "functions deploy",
      "functions invoke",
      "functions logs",
      "functions delete",
      "secrets list",
      "secrets set",
      "secrets delete",
      "kv list",
      "kv get",
      "kv put",
      "kv delete",
      "db query",
      "db tables",
      "projects create",
      "projects list",
      "keys create",
      "pull",
      "push",
      "dev",
      "mcp",
    ]) {
      assert.match(r.stdout, new RegExp(`^  ${command}( |$)`, "m"), `--help lists "${command}"`);
    }
  });

  it("an unknown command suggests the closest one and exits 2", async () => {
    const r = await cli(server, ["functoins", "list"]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'error: unknown command "functoins"; did you mean "functions list"?\n');
    const verb = await cli(server, ["functions", "lst"]);
    assert.equal(verb.code, 2);
    assert.match(verb.stderr, /did you mean "functions list"\?/);
  });

  it("an unknown flag suggests the closest one and exits 2", async () => {
    const r = await cli(server, ["functions", "list", "--jsn"]);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      'error: unknown flag --jsn for "workerbase functions list"; did you mean --json?\n',
    );
  });

  it("a missing argument exits 2 and shows the usage", async () => {
    const r = await cli(server, ["functions", "get"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /missing argument: workerbase functions get <fn>/);
  });

  it("a server that is down is one line, never a stack trace", async () => {
    const port = await freePort();
    const r = await cli(server, ["functions", "list"], {
      env: { WORKERBASE_URL: `http://127.0.0.1:${port}` },
    });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `error: cannot reach http://127.0.0.1:${port}: is "workerbase serve" running?\n`,
    );
    assert.equal(r.stdout, "");
  });

  it("a wrong key is shown masked, with where it came from", async () => {
    const wrong = "wb_wrongkey_0123456789abcdef";
    const fromEnv = await cli(server, ["functions", "list"], {
      env: { WORKERBASE_API_KEY: wrong },
    });
    assert.equal(fromEnv.code, 1);
    assert.match(fromEnv.stderr, /refused the API key wb_wrong… \(from WORKERBASE_API_KEY\)/);
    assert.ok(!fromEnv.stderr.includes(wrong), "the whole key is never printed");
    assert.equal(fromEnv.stderr.trim().split("\n").length, 1);

    const fromFlag = await cli(server, ["functions", "list", "--api-key", wrong]);
    assert.match(fromFlag.stderr, /\(from --api-key\)/);
  });

  it("the key defaults to the one saved in the data dir, and says so when it is wrong", async () => {
    const data = fs.mkdtempSync(path.join(os.tmpdir(), "wb-cli-cred-"));
    const env = { WORKERBASE_API_KEY: undefined };
    try {
      const none = await cli(server, ["functions", "list", "--data-dir", data], { env });
      assert.equal(none.code, 1);
      assert.match(none.stderr, /^error: no API key: pass --api-key or set WORKERBASE_API_KEY/);

      const file = path.join(data, "credentials.json");
      fs.writeFileSync(file, JSON.stringify({ api_key: server.key }));
      const ok = await cli(server, ["functions", "list", "--json", "--data-dir", data], { env });
      assert.equal(ok.code, 0, ok.stderr);
      assert.ok(Array.isArray(json(ok).data));

      fs.writeFileSync(file, JSON.stringify({ api_key: "wb_stale_key_from_another_server" }));
      const viaEnv = await cli(server, ["functions", "list"], {
        env: { ...env, WORKERBASE_DATA_DIR: data },
      });
      assert.equal(viaEnv.code, 1);
      assert.ok(viaEnv.stderr.includes(`wb_stale… (from ${file})`), viaEnv.stderr);
    } finally {
      fs.rmSync(data, { recursive: true, force: true });
    }
  });
});

describe("workerbase functions", () => {
  it("create, list, get, deploy, invoke, logs and delete a function", async () => {
    const file = path.join(dir, "echo.js");
    const created = await cli(server, ["functions", "create", "Echo", "--file", file, "--json"]);
    assert.equal(created.code, 0, created.stderr);
    const fn = json(created).data;
    assert.equal(fn.slug, "echo");
    assert.equal(fn.status, "draft");
    assert.equal(fn.code, echo);

    const listed = json(await cli(server, ["functions", "list", "--json"]));
    assert.ok(listed.data.some((f: any) => f.id === fn.id && f.status === "draft"));
    const table = await cli(server, ["functions", "list"]);
    assert.match(table.stdout, /^SLUG\s+NAME\s+STATUS/m);
    assert.match(table.stdout, /^echo\s+Echo\s+draft\s+0\s+private\s+passthrough/m);
    assert.ok(!table.stdout.includes("\x1b["), "no colour when stdout is not a terminal");

    const deployed = await cli(server, ["functions", "deploy", "echo"]);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.equal(deployed.stdout, "✓ deployed echo (version 1)\n");

    const got = json(await cli(server, ["functions", "get", fn.id, "--json"]));
    assert.equal(got.data.status, "deployed");
    assert.equal(got.data.version, 1);
    const code = await cli(server, ["functions", "get", "echo", "--code"]);
    assert.equal(code.stdout, echo);

    const posted = await cli(server, ["functions", "invoke", "echo", "--data", '{"n":1}']);
    assert.equal(posted.code, 0, posted.stderr);
    const answer = JSON.parse(posted.stdout);
    assert.equal(answer.method, "POST");
    assert.equal(answer.type, "application/json");
    assert.equal(answer.body, '{"n":1}');
    assert.match(posted.stderr, /^HTTP 200 OK · \d+ ms · invocation [0-9a-f-]{36}\n$/);

    const bodyFile = path.join(dir, "body.json");
    fs.writeFileSync(bodyFile, '{"from":"file"}');
    const fromFile = await cli(server, ["functions", "invoke", "echo", "--data", `@${bodyFile}`]);
    assert.equal(JSON.parse(fromFile.stdout).body, '{"from":"file"}');

    const get = await cli(server, [
      "functions",
      "invoke",
      "echo",
      "-X",
      "GET",
      "-H",
      "X-Test: yes",
      "--path",
      "/sub/path?q=1",
    ]);
    assert.equal(get.code, 0, get.stderr);
    const seen = JSON.parse(get.stdout);
    assert.equal(seen.method, "GET");
    assert.equal(seen.path, `/platform/v1/functions/echo/invoke/sub/path`);
    assert.equal(seen.query, "?q=1");
    assert.equal(seen.header, "yes");

    const failing = await cli(server, ["functions", "invoke", "echo", "--path", "?status=404"]);
    assert.equal(failing.code, 1, "a non-2xx answer exits 1");
    assert.equal(failing.stdout, "nope");
    assert.match(failing.stderr, /^HTTP 404 Not Found/);

    const logs = await cli(server, ["functions", "logs", "echo", "--json", "--limit", "2"]);
    assert.equal(logs.code, 0, logs.stderr);
    const records = json(logs).data;
    assert.equal(records.length, 2);
    assert.equal(records[0].status_code, 404, "newest first, as the API lists them");
    assert.deepEqual(
      records[1].logs.map((l: any) => l.message),
      ["echo GET /platform/v1/functions/echo/invoke/sub/path"],
    );
    const text = await cli(server, ["functions", "logs", "echo", "--status", "failed"]);
    assert.equal(text.code, 0);
    assert.equal(text.stdout, "No invocations yet.\n", "a 404 answer is not a failed invocation");
    const all = await cli(server, ["functions", "logs", "echo"]);
    assert.match(
      all.stdout,
      /✓ 200 .* api .*\n  log   echo POST \/platform\/v1\/functions\/echo\/invoke/,
    );

    const deleted = await cli(server, ["functions", "delete", "echo"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    const gone = await cli(server, ["functions", "get", "echo"]);
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, 'error: function "echo" not found\n');
    const invokeGone = await cli(server, ["functions", "invoke", "echo"]);
    assert.equal(invokeGone.code, 1);
    assert.match(invokeGone.stderr, /^error: function "echo" not found/);
  });

  it("update saves without deploying; a failed deploy prints deploy_error and exits 1", async () => {
    const file = path.join(dir, "v1.js");
    fs.writeFileSync(file, `async function handler() { return new Response("one"); }\n`);
    assert.equal((await cli(server, ["functions", "create", "Versions", "--file", file])).code, 0);
    assert.equal((await cli(server, ["functions", "deploy", "versions"])).code, 0);

    fs.writeFileSync(file, `async function handler() {\n  return new Response("two" +);\n}\n`);
    const updated = await cli(server, [
      "functions",
      "update",
      "versions",
      "--file",
      file,
      "--public",
      "--mode",
      "wrapped",
      "--timeout",
      "5",
    ]);
    assert.equal(updated.code, 0, updated.stderr);
    const draft = json(await cli(server, ["functions", "get", "versions", "--json"])).data;
    assert.equal(draft.public_endpoint, true);
    assert.equal(draft.invoke_response_mode, "wrapped");
    assert.equal(draft.runtime_config.timeout, 5);
    assert.equal(draft.version, 1, "update never deploys");
    const still = await cli(server, ["functions", "invoke", "versions"]);
    assert.equal(still.stdout, '{"data":"one"}');

    const failed = await cli(server, ["functions", "deploy", "versions"]);
    assert.equal(failed.code, 1);
    assert.equal(failed.stdout, "");
    assert.match(
      failed.stderr,
      /^error: deploy of versions failed: SyntaxError: .* at line 2, column \d+; version 1 is still live\n$/,
    );

    const both = await cli(server, ["functions", "update", "versions", "--public", "--private"]);
    assert.equal(both.code, 2);
    const badMode = await cli(server, ["functions", "update", "versions", "--mode", "raw"]);
    assert.equal(badMode.code, 2);
    assert.match(badMode.stderr, /--mode must be passthrough or wrapped/);
  });

  it("logs --follow prints a new invocation with its console lines as it happens", async () => {
    const file = path.join(dir, "follow.js");
    fs.writeFileSync(
      file,
      `async function handler(request) {\n  console.warn("marker", await request.text());\n  return new Response("ok");\n}\n`,
    );
    assert.equal((await cli(server, ["functions", "create", "Follow", "--file", file])).code, 0);
    assert.equal((await cli(server, ["functions", "deploy", "follow"])).code, 0);

    const follow = cliBackground(server, ["functions", "logs", "follow", "--follow"]);
    try {
      await new Promise((r) => setTimeout(r, 500));
      const first = await cli(server, ["functions", "invoke", "follow", "--data", "first-call"]);
      assert.equal(first.code, 0);
      await waitForOutput(follow.output, /warn  marker first-call/, 5000);
      const second = await cli(server, ["functions", "invoke", "follow", "--data", "second-call"]);
      assert.equal(second.code, 0);
      await waitForOutput(follow.output, /warn  marker second-call/, 5000);
      assert.equal(follow.output().match(/marker first-call/g)?.length, 1, "each record once");
    } finally {
      follow.child.kill("SIGINT");
    }
    assert.equal(await follow.exited, 0, "interrupting --follow exits 0");
  });

  it("colour and the deploy spinner appear only on a terminal, never with NO_COLOR", async (t) => {
    if (spawnSync("script", ["--version"]).status !== 0)
      return t.skip("script(1) is not installed");
    const file = path.join(dir, "tty.js");
    fs.writeFileSync(file, `async function handler() { return new Response("tty"); }\n`);
    assert.equal((await cli(server, ["functions", "create", "Tty", "--file", file])).code, 0);
    const onTty = (command: string, extra: Record<string, string | undefined> = {}) =>
      spawnSync("script", ["-qec", `${process.execPath} ${bin} ${command}`, "/dev/null"], {
        env: cliEnv(server, extra),
        encoding: "utf8",
      });
    const deploy = onTty("functions deploy tty");
    assert.equal(deploy.status, 0, deploy.stdout);
    assert.match(deploy.stdout, /⠋.*deploying tty/, "a spinner while waiting");
    assert.match(deploy.stdout, /\x1b\[32m✓\x1b\[39m deployed tty/, "green on a terminal");
    const plain = onTty("functions list", { NO_COLOR: "1" });
    assert.equal(plain.status, 0);
    assert.match(plain.stdout, /tty/);
    assert.ok(!plain.stdout.includes("\x1b["), "NO_COLOR turns colour off");
  });
});
