import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { freePort, workerdPidsFor } from "../helpers/server.js";
import { cliBackground, waitForOutput } from "../helpers/cli.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-cli-dev-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const app = (version: string) => `async function handler(request, env) {
  const url = new URL(request.url);
  console.log("serving", url.pathname);
  if (url.pathname.endsWith("/kv")) {
    if (!env.KV) return new Response("no-kv");
    const n = Number((await env.KV.get("count")) ?? 0) + 1;
    await env.KV.put("count", String(n));
    return new Response("count " + n);
  }
  return new Response("${version} " + env.GREETING);
}
`;

async function get(url: string): Promise<string> {
  const res = await fetch(url);
  return res.text();
}

/** Polls `url` until its body matches; resolves with how long that took. */
async function until(url: string, pattern: RegExp, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const body = await get(url);
    if (pattern.test(body)) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`still "${body}" after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("workerbase dev", () => {
  it("serves one file on the real runtime with .dev.vars secrets and reloads on save", async (t) => {
    const file = path.join(dir, "app.js");
    fs.writeFileSync(file, app("v1"));
    fs.writeFileSync(path.join(dir, ".dev.vars"), '# local secrets\nGREETING="hello there"\n');
    const data = path.join(dir, "state");
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const dev = cliBackground(
      undefined,
      ["dev", "app.js", "--port", String(port), "--data", data],
      {
        cwd: dir,
      },
    );
    try {
      await waitForOutput(dev.output, /✓ loaded app\.js \(version 1/, 30_000);
      await waitForOutput(dev.output, /✓ secrets from \.dev\.vars: GREETING/);
      assert.match(dev.output(), new RegExp(`on http://127\\.0\\.0\\.1:${port}/`));

      assert.equal(await get(`${url}/hello`), "v1 hello there");
      await waitForOutput(
        dev.output,
        /GET \/hello → 200 .*\n {2}log {3}serving \/platform\/v1\/functions\/app\/invoke\/hello/,
      );

      const kv = await get(`${url}/kv`);
      if (kv === "no-kv") t.diagnostic("env.KV is not wired in this build; local KV not checked");
      else {
        assert.equal(kv, "count 1");
        assert.equal(await get(`${url}/kv`), "count 2", "local KV keeps its data between calls");
      }

      // A save reloads within a second.
      const saved = Date.now();
      fs.writeFileSync(file, app("v2"));
      await until(`${url}/`, /^v2 /);
      const reloadMs = Date.now() - saved;
      assert.ok(reloadMs < 1000, `reloaded in ${reloadMs} ms`);
      await waitForOutput(dev.output, /✓ reloaded app\.js \(version 2/);

      // A broken save shows the line in the user's file; the last good version keeps serving.
      fs.writeFileSync(
        file,
        `async function handler(request, env) {\n  return new Response("v3" +;\n}\n`,
      );
      await waitForOutput(
        dev.output,
        /error: app\.js:2:\d+: SyntaxError: .*\n.*the last good version keeps serving/,
      );
      assert.equal(await get(`${url}/`), "v2 hello there");

      // .dev.vars changes apply too.
      fs.writeFileSync(path.join(dir, ".dev.vars"), "GREETING=bonjour\n");
      await until(`${url}/`, /^v2 bonjour$/);

      fs.writeFileSync(file, app("v4"));
      await until(`${url}/`, /^v4 bonjour$/);
    } finally {
      dev.child.kill("SIGINT");
    }
    assert.equal(await dev.exited, 0, dev.output());
    assert.deepEqual(workerdPidsFor(data), [], "no workerd process is left");
  });

  it("a file that does not exist is one line and exit 1", async () => {
    const dev = cliBackground(undefined, ["dev", "missing.js", "--data", path.join(dir, "x")], {
      cwd: dir,
    });
    assert.equal(await dev.exited, 1);
    assert.equal(dev.output(), "error: missing.js does not exist\n");
  });
});
