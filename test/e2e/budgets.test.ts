import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  deployFunction,
  eventually,
  startServer,
  waitForDeploy,
  type TestServer,
} from "../helpers/server.js";

async function invoke(server: TestServer, id: string, query = "") {
  const started = Date.now();
  const res = await fetch(`${server.api}/functions/${id}/invoke${query}`, {
    method: "POST",
    headers: { "x-api-key": server.key },
  });
  const text = await res.text();
  return { status: res.status, text, ms: Date.now() - started };
}

async function health(server: TestServer) {
  const res = await fetch(`${server.url}/healthz`, { headers: { "x-admin-key": server.adminKey } });
  return (await res.json()) as any;
}

async function latestRecord(server: TestServer, id: string) {
  return eventually(async () => {
    const list = (await (await server.call("GET", `/functions/${id}/invocations`)).json()) as any;
    return list.data[0];
  });
}

async function tierReady(server: TestServer, tierMb = 128, cpuMs = 1000) {
  await eventually(async () => {
    const h = await health(server);
    const ready = h.runtime.filter(
      (p: any) => p.tier_mb === tierMb && p.tier_cpu_ms === cpuMs && p.state === "ready",
    );
    return ready.length === 2 ? true : undefined;
  }, 20_000);
}

// About two seconds of pure computation here: no I/O, so it keeps the event loop blocked.
const spin = (n: string) => `let x = 0; for (let i = 0; i < ${n}; i++) { x = (x * 31 + i) | 0; }`;

describe("the CPU budget", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  it("a call that blocks past its budget answers 504 naming it; calls beside it answer 503 and only the blocker gets strikes", async () => {
    const loop = await deployFunction(server, {
      name: "spinner",
      code: `async function handler() { while (true) {} }`,
    });
    // Same project, so the same home process: it is inside when the loop blocks it.
    const patient = await deployFunction(server, {
      name: "patient",
      code: `async function handler() { await new Promise((r) => setTimeout(r, 1500)); return new Response("waited"); }`,
    });
    for (let round = 0; round < 3; round++) {
      await tierReady(server);
      const killsBefore = (await health(server)).kills;
      const bystander = invoke(server, patient.id);
      await new Promise((r) => setTimeout(r, 100));
      const cut = await invoke(server, loop.id);
      assert.equal(cut.status, 504);
      assert.match(JSON.parse(cut.text).error, /exceeded its CPU budget of 1000 ms/);
      assert.ok(cut.ms < 8000, `cut after ${cut.ms} ms`);
      const other = await bystander;
      assert.equal(other.status, 503, other.text);
      assert.match(JSON.parse(other.text).error, /replaced because another invocation/);
      // One kill is counted once, however many watchdog ticks saw the blocked process.
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await health(server)).kills, killsBefore + 1);
    }
    await tierReady(server);
    const held = await invoke(server, loop.id);
    assert.equal(held.status, 503);
    assert.match(JSON.parse(held.text).error, /held back/);
    const fine = await invoke(server, patient.id);
    assert.equal(fine.status, 200, "the bystander collected no strikes");
    assert.equal(fine.text, "waited");
    const record = await latestRecord(server, loop.id);
    assert.equal(record.status_code, 504);
  });

  it("runtime_config.cpu_ms lets a function compute longer, in a tier of its own", async () => {
    const code = `async function handler() { ${spin("3e9")} return new Response(String(x)); }`;
    const short = await deployFunction(server, { name: "short-budget", code });
    const long = await deployFunction(server, {
      name: "long-budget",
      code,
      runtime_config: { cpu_ms: 30_000, timeout: 60 },
    });
    await tierReady(server);
    const cut = await invoke(server, short.id);
    assert.equal(cut.status, 504);
    const done = await invoke(server, long.id);
    assert.equal(done.status, 200, done.text);
    const h = await health(server);
    assert.ok(h.runtime.some((p: any) => p.tier_cpu_ms === 30_000 && p.state === "ready"));
  });

  it("cpu_ms outside 10..30000 is refused with a 400 naming the field", async () => {
    const res = await server.call("POST", "/functions", {
      function: {
        name: "greedy",
        code: "async function handler() {}",
        runtime_config: { cpu_ms: 30_001 },
      },
    });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /cpu_ms/);
  });

  it("a top-level endless loop fails its deploy within the budget instead of stalling a process", async () => {
    const started = Date.now();
    const fn = await deployFunction(server, {
      name: "top-level-loop",
      code: `while (true) {}\nasync function handler() { return new Response("never"); }`,
    });
    assert.equal(fn.status, "error");
    assert.match(fn.deploy_error, /start-up exceeded its CPU budget of 1000 ms/);
    assert.ok(Date.now() - started < 10_000, `the deploy took ${Date.now() - started} ms`);
  });
});

describe("the memory bound", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  it("typed arrays outside the JS heap count: 2 GB from a 128 MB function never answers 200", async () => {
    const h = await health(server);
    assert.ok(["cgroup", "rss-sampling"].includes(h.memory_enforcement));
    const fn = await deployFunction(server, {
      name: "typed-bomb",
      code: `async function handler() {
        const keep = [];
        for (let i = 0; i < 32; i++) { const a = new Uint8Array(64 * 1024 * 1024); a.fill(1); keep.push(a); }
        return new Response("allocated " + keep.length * 64 + " MB");
      }`,
      runtime_config: { cpu_ms: 30_000 },
    });
    const res = await invoke(server, fn.id);
    assert.equal(res.status, 500, res.text);
    assert.match(JSON.parse(res.text).error, /memory bound|stopped/);
    await tierReady(server);
  });
});

describe("runtime tiers", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  it("a tier whose start failed is tried again on the next call, leaving no process behind", async () => {
    const config = path.join(server.dataDir, "runtime", "workerd-512mb.capnp");
    const saved = fs.readFileSync(config);
    fs.writeFileSync(config, "this is not a workerd config");
    const failed = await deployFunction(server, {
      name: "mid-tier",
      code: `async function handler() { return new Response("from 512"); }`,
      runtime_config: { memory: 512 },
    });
    assert.equal(failed.status, "error");
    assert.match(failed.deploy_error, /No runtime process is available/);
    assert.ok(!(await health(server)).runtime.some((p: any) => p.tier_mb === 512));
    fs.writeFileSync(config, saved);
    const redeploy = await server.call("POST", `/functions/${failed.id}/deploy`);
    assert.equal(redeploy.status, 202);
    const fn = await waitForDeploy(server, failed.id);
    assert.equal(fn.status, "deployed", fn.deploy_error);
    const second = await invoke(server, fn.id);
    assert.equal(second.status, 200, second.text);
    assert.equal(second.text, "from 512");
  });
});

describe("limits tenant code cannot change", () => {
  let server: TestServer;
  let upstream: http.Server;
  let upstreamUrl: string;
  before(async () => {
    server = await startServer();
    upstream = http.createServer((_req, res) => res.end("ok"));
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
  });
  after(async () => {
    await server.stop();
    upstream.close();
  });

  it("the env seen through cloudflare:workers holds only bindings and secrets", async () => {
    const fn = await deployFunction(server, {
      name: "env-peek",
      code: `import { env } from "cloudflare:workers";
      async function handler() {
        return Response.json({ keys: Object.keys(env).sort(), limits: typeof env.__WB_LIMITS });
      }`,
    });
    const res = await invoke(server, fn.id);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(JSON.parse(res.text), {
      keys: ["__WB_DB", "__WB_KV", "__WB_LATE"],
      limits: "undefined",
    });
  });

  it("a lying ArrayBuffer byteLength getter does not walk 150 MiB past the 100 MiB limit", async () => {
    const fn = await deployFunction(server, {
      name: "liar",
      code: `import { env } from "cloudflare:workers";
      Object.defineProperty(ArrayBuffer.prototype, "byteLength", { get() { return 1; } });
      Object.defineProperty(Object.getPrototypeOf(Uint8Array.prototype), "length", { get() { return 1; } });
      async function handler() {
        if (env.__WB_LIMITS) env.__WB_LIMITS.maxResponseBodyBytes = 1e12;
        return new Response(new Uint8Array(150 * 1024 * 1024));
      }`,
    });
    const res = await invoke(server, fn.id);
    assert.equal(res.status, 500);
    assert.match(JSON.parse(res.text).error, /response body is larger than 104857600 bytes/);
  });

  it("forged result metadata is capped by the host: console lines, status and shape", async () => {
    const fn = await deployFunction(server, {
      name: "forger",
      code: `Object.prototype.toJSON = function () {
        if (this && Array.isArray(this.logs)) {
          return { status: 200, headers: [], logs: Array.from({ length: 5000 }, (_, i) => ({ level: "log", message: "forged " + i, timestamp: "t" })) };
        }
        return this;
      };
      async function handler() { return new Response("body"); }`,
    });
    const res = await invoke(server, fn.id);
    assert.equal(res.status, 200, res.text);
    const record = await latestRecord(server, fn.id);
    assert.equal(record.logs.length, 1001);
    assert.match(record.logs[1000].message, /dropped/);

    const broken = await deployFunction(server, {
      name: "bad-shape",
      code: `Object.prototype.toJSON = function () { return this && Array.isArray(this.logs) ? { status: 42 } : this; };
      async function handler() { return new Response("body"); }`,
    });
    const bad = await invoke(server, broken.id);
    assert.equal(bad.status, 500);
    assert.match(JSON.parse(bad.text).error, /could not be read/);
  });

  it("subrequests stay capped at 50 after the function tampers with what the wrapper uses", async () => {
    const fn = await deployFunction(server, {
      name: "counter-tamper",
      code: `import { AsyncLocalStorage } from "node:async_hooks";
      AsyncLocalStorage.prototype.getStore = () => undefined;
      AsyncLocalStorage.prototype.run = (store, fn, ...args) => fn(...args);
      Headers.prototype.set = function () {};
      async function handler(req) {
        const target = new URL(req.url).searchParams.get("t");
        let ok = 0;
        let error = null;
        for (let i = 0; i < 60; i++) {
          try { await (await fetch(target)).text(); ok++; } catch (err) { error = err.message; }
        }
        return Response.json({ ok, error });
      }`,
      runtime_config: { compatibility_flags: ["nodejs_compat"] },
    });
    const res = await invoke(server, fn.id, `?t=${encodeURIComponent(upstreamUrl)}`);
    assert.equal(res.status, 200, res.text);
    const body = JSON.parse(res.text);
    assert.ok(body.ok <= 50, `${body.ok} fetches got through`);
    assert.equal(body.ok, 50);
    assert.match(body.error, /Too many subrequests/);
  });
});
