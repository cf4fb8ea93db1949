import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import {
  bin,
  deployFunction,
  eventually,
  freePort,
  startServer,
  workerdPidsFor,
} from "../helpers/server.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("running the server", () => {
  it("deployed functions still answer after a restart, and SIGTERM leaves no workerd behind", async () => {
    const server = await startServer();
    const fn = await deployFunction(server, {
      name: "survivor",
      code: `async function handler() { return new Response("still here"); }`,
    });
    const pids = workerdPidsFor(server.dataDir);
    assert.equal(pids.length, 2);
    assert.equal(await server.stop("SIGTERM"), 0);
    await eventually(async () => (workerdPidsFor(server.dataDir).length === 0 ? true : undefined));
    for (const pid of pids) assert.equal(alive(pid), false);

    const again = await startServer({
      dataDir: server.dataDir,
      env: { WORKERBASE_API_KEY: server.key },
    });
    try {
      const res = await fetch(`${again.api}/functions/${fn.id}/invoke`, {
        headers: { "x-api-key": server.key },
      });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "still here");
      const got = (await (await again.call("GET", `/functions/${fn.id}`)).json()) as any;
      assert.equal(got.data.status, "deployed");
      assert.equal(got.data.version, 1);
    } finally {
      assert.equal(await again.stop("SIGINT"), 0);
    }
    assert.deepEqual(workerdPidsFor(server.dataDir), []);
  });

  it("SIGTERM to the whole process group (systemd, docker stop) logs nothing alarming", async () => {
    const server = await startServer({ group: true });
    const query = await server.call("POST", "/database/query", { sql: "SELECT 1" });
    assert.equal(query.status, 200);
    const { databases } = await server.health();
    assert.equal(databases.pids.length, 2);
    assert.equal(await server.stop("SIGTERM"), 0);
    const after = server.output().split("SIGTERM received")[1] ?? "";
    assert.doesNotMatch(after, /restart|exited|warning|error|failed/i, server.output());
    for (const pid of databases.pids) assert.equal(alive(pid), false);
  });

  it("a SIGKILLed host takes its workerd processes with it", async () => {
    const server = await startServer();
    const pids = workerdPidsFor(server.dataDir);
    assert.equal(pids.length, 2);
    await server.stop("SIGKILL");
    await eventually(async () => (pids.every((p) => !alive(p)) ? true : undefined), 5000);
  });

  it("SIGTERM lets an in-flight invocation finish before exiting", async () => {
    const server = await startServer();
    const fn = await deployFunction(server, {
      name: "slowish",
      code: `async function handler() { await new Promise((r) => setTimeout(r, 1000)); return new Response("finished"); }`,
    });
    const pending = fetch(`${server.api}/functions/${fn.id}/invoke`, {
      headers: { "x-api-key": server.key },
    });
    await new Promise((r) => setTimeout(r, 300));
    const stopped = server.stop("SIGTERM");
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "finished");
    assert.equal(await stopped, 0);
    assert.deepEqual(workerdPidsFor(server.dataDir), []);
  });

  it("on first start without WORKERBASE_API_KEY a key is printed once and saved 0600, and the database holds only its hash", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-first-"));
    const port = await freePort();
    const env = { ...process.env };
    delete env.WORKERBASE_API_KEY;
    const child = spawn(
      process.execPath,
      [bin, "serve", "--port", String(port), "--data", dataDir],
      {
        env: { ...env, WORKERBASE_RUNTIME_PROCESSES: "2" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    try {
      await eventually(async () => (out.includes("listening on") ? true : undefined), 30_000);
      const file = path.join(dataDir, "credentials.json");
      const { api_key } = JSON.parse(fs.readFileSync(file, "utf8"));
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.ok(out.includes(api_key));
      const res = await fetch(`http://127.0.0.1:${port}/platform/v1/functions`, {
        headers: { "x-api-key": api_key },
      });
      assert.equal(res.status, 200);
      for (const name of fs.readdirSync(dataDir)) {
        const full = path.join(dataDir, name);
        if (name === "credentials.json" || !fs.statSync(full).isFile()) continue;
        assert.ok(!fs.readFileSync(full).includes(api_key), `${name} holds the plain key`);
      }
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
    // A restart prints no new key.
    const child2 = spawn(
      process.execPath,
      [bin, "serve", "--port", String(port), "--data", dataDir],
      {
        env: { ...env, WORKERBASE_RUNTIME_PROCESSES: "2" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out2 = "";
    child2.stdout.on("data", (d) => (out2 += d));
    try {
      await eventually(async () => (out2.includes("listening on") ? true : undefined), 30_000);
      assert.ok(!out2.includes("API key"));
    } finally {
      child2.kill("SIGTERM");
      await new Promise((r) => child2.once("exit", r));
    }
  });
});
