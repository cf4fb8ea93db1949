import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { deployFunction, startServer, type TestServer } from "../helpers/server.js";
import { cli } from "../helpers/cli.js";

let server: TestServer;
let dir: string;

before(async () => {
  server = await startServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-cli-sync-"));
});
after(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function fn(slug: string) {
  const res = await server.call("GET", `/functions/${slug}`);
  return res.status === 200 ? ((await res.json()) as any).data : null;
}

async function invoke(slug: string) {
  const res = await server.call("POST", `/functions/${slug}/invoke`);
  return res.text();
}

describe("workerbase pull and push", () => {
  it("pull, edit, push: deploys the edit and a new function, and leaves the rest alone", async () => {
    await deployFunction(server, {
      name: "Greeter",
      description: "says hello",
      code: `async function handler() {\n  return new Response("hello v1");\n}\n`,
      runtime_config: { timeout: 10 },
    });
    await deployFunction(server, {
      name: "Steady",
      code: `async function handler() { return new Response("steady"); }`,
    });
    const project = path.join(dir, "roundtrip");

    const pulled = await cli(server, ["pull", project]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, /pulled 2 functions/);
    const greeter = path.join(project, "functions", "greeter");
    assert.deepEqual(fs.readdirSync(greeter).sort(), ["function.yaml", "index.js"]);
    assert.equal(
      fs.readFileSync(path.join(greeter, "index.js"), "utf8"),
      `async function handler() {\n  return new Response("hello v1");\n}\n`,
    );
    const yaml = fs.readFileSync(path.join(greeter, "function.yaml"), "utf8");
    assert.match(yaml, /^name: Greeter$/m);
    assert.match(yaml, /^description: says hello$/m);
    assert.match(yaml, /^entrypoint: index.js$/m);
    assert.match(yaml, /^ {2}timeout: 10$/m);

    const clean = await cli(server, ["push", project]);
    assert.equal(clean.code, 0, clean.stderr);
    assert.match(clean.stdout, /= greeter\s+unchanged/);
    assert.match(clean.stdout, /nothing to push/);

    // Edit one function, add a new one with a minimal function.yaml.
    fs.writeFileSync(
      path.join(greeter, "index.js"),
      `async function handler() {\n  return new Response("hello v2");\n}\n`,
    );
    const fresh = path.join(project, "functions", "newcomer");
    fs.mkdirSync(fresh);
    fs.writeFileSync(path.join(fresh, "function.yaml"), "public_endpoint: true\n");
    fs.writeFileSync(
      path.join(fresh, "index.js"),
      `async function handler() { return new Response("new here"); }\n`,
    );
    const steadyBefore = await fn("steady");

    const dry = await cli(server, ["push", project, "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /~ greeter\s+update code; deploy/);
    assert.match(dry.stdout, /\+ newcomer\s+create and deploy/);
    assert.match(dry.stdout, /= steady\s+unchanged/);
    assert.match(dry.stdout, /dry run: nothing was changed/);
    assert.equal(await fn("newcomer"), null, "--dry-run creates nothing");
    assert.equal((await fn("greeter")).code.includes("v1"), true, "--dry-run updates nothing");
    assert.equal(await invoke("greeter"), "hello v1");

    const pushed = await cli(server, ["push", project]);
    assert.equal(pushed.code, 0, pushed.stderr + pushed.stdout);
    assert.match(pushed.stdout, /✓ greeter: deployed \(version 2\)/);
    assert.match(pushed.stdout, /✓ newcomer: deployed \(version 1\)/);
    assert.equal(await invoke("greeter"), "hello v2");
    assert.equal(await invoke("newcomer"), "new here");
    const created = await fn("newcomer");
    assert.equal(created.public_endpoint, true);
    assert.equal(created.name, "newcomer", "a missing name defaults to the slug");
    const steadyAfter = await fn("steady");
    assert.equal(steadyAfter.version, steadyBefore.version, "unchanged functions are not deployed");
    assert.equal(steadyAfter.updated_at, steadyBefore.updated_at);

    // A change only to settings that apply at once is saved without a deploy (a deploy would
    // undo a rollback); a function only on the server is left alone.
    fs.writeFileSync(
      path.join(greeter, "function.yaml"),
      "name: Greeter\nslug: greeter\ndescription: says hello\ninvoke_response_mode: wrapped\nruntime_config:\n  timeout: 10\n",
    );
    fs.rmSync(path.join(project, "functions", "steady"), { recursive: true });
    const settings = await cli(server, ["push", project]);
    assert.equal(settings.code, 0, settings.stderr);
    assert.match(
      settings.stdout,
      /~ greeter\s+update invoke_response_mode \(applies at once, no deploy\)/,
    );
    assert.match(settings.stdout, /1 only on the server, left alone \(steady\)/);
    assert.equal(await invoke("greeter"), '{"data":"hello v2"}');
    assert.notEqual(await fn("steady"), null, "push never deletes");
  });

  it("a failed deploy is reported per function with the line in the local file", async () => {
    const project = path.join(dir, "broken");
    const folder = path.join(project, "functions", "broken-one");
    fs.mkdirSync(folder, { recursive: true });
    fs.writeFileSync(path.join(folder, "function.yaml"), "name: Broken one\n");
    fs.writeFileSync(path.join(folder, "index.js"), `async function handler() {\n  return (;\n}\n`);
    const pushed = await cli(server, ["push", project]);
    assert.equal(pushed.code, 1);
    assert.match(
      pushed.stdout,
      /✗ broken-one: deploy failed: .*functions\/broken-one\/index\.js:2:\d+: SyntaxError/,
    );
    assert.equal(pushed.stderr, "error: 1 of 1 function failed; see above\n");

    // Unchanged since: push does not retry it (functions deploy does).
    const again = await cli(server, ["push", project]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /= broken-one\s+unchanged/);
  });

  it("invalid YAML, unknown keys and a missing entrypoint name the file and the line", async () => {
    const project = path.join(dir, "invalid");
    const folder = path.join(project, "functions", "bad");
    fs.mkdirSync(folder, { recursive: true });
    fs.writeFileSync(path.join(folder, "index.js"), `async function handler() {}\n`);
    const yamlFile = path.join(folder, "function.yaml");
    const before = (await server.call("GET", "/functions").then((r) => r.json())) as any;
    const push = async (manifest: string) => {
      fs.writeFileSync(yamlFile, manifest);
      const r = await cli(server, ["push", project], { cwd: project });
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.stdout, "", "nothing is planned or changed");
      return r.stderr;
    };

    assert.equal(
      await push("name: Bad\nruntime_config:\n  timeout: [1,\nslug: x\n"),
      "error: functions/bad/function.yaml:4: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]\n",
    );
    assert.equal(
      await push("name: Bad\npublik_endpoint: true\n"),
      'error: functions/bad/function.yaml:2: unknown key "publik_endpoint"; did you mean "public_endpoint"?\n',
    );
    assert.equal(
      await push("name: Bad\nruntime_config:\n  timeout: 5\n  memroy: 64\n"),
      'error: functions/bad/function.yaml:4: unknown key "runtime_config.memroy"; did you mean "memory"?\n',
    );
    assert.equal(
      await push("name: Bad\n\nentrypoint: main.js\n"),
      "error: functions/bad/function.yaml:3: entrypoint functions/bad/main.js does not exist\n",
    );
    assert.equal(
      await push("name: Bad\nruntime_config:\n  timeout: 9000\n"),
      "error: functions/bad/function.yaml:3: runtime_config.timeout: must be a whole number from 1 to 300\n",
    );
    assert.match(
      await push("public_endpoint: yes\n"),
      /function\.yaml:1: public_endpoint: .*(boolean|true or false)/,
    );

    const after = (await server.call("GET", "/functions").then((r) => r.json())) as any;
    assert.equal(after.data.length, before.data.length, "nothing was created");
  });
});
