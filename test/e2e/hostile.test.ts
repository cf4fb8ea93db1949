import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { deployFunction, eventually, startServer, type TestServer } from "../helpers/server.js";

async function invoke(server: TestServer, id: string, key = server.key, path = "") {
  const started = Date.now();
  const res = await fetch(`${server.api}/functions/${id}/invoke${path}`, {
    method: "POST",
    headers: { "x-api-key": key },
  });
  const text = await res.text();
  return {
    status: res.status,
    text,
    ms: Date.now() - started,
    id: res.headers.get("x-invocation-id"),
    headers: res.headers,
  };
}

async function newProject(server: TestServer, name: string): Promise<string> {
  const res = await fetch(`${server.url}/admin/v1/projects`, {
    method: "POST",
    headers: { "x-admin-key": server.adminKey, "content-type": "application/json" },
    body: JSON.stringify({ project: { name } }),
  });
  return ((await res.json()) as any).data.api_key;
}

async function health(server: TestServer) {
  return server.health();
}

const hello = `async function handler() { return new Response("hello"); }`;

describe("runaway code", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  it("an endless loop answers 504, other projects keep being served meanwhile, and the stuck process is replaced", async () => {
    const otherKey = await newProject(server, "bystander");
    const loop = await deployFunction(server, {
      name: "loop",
      runtime_config: { timeout: 2 },
      code: `async function handler() { while (true) {} }`,
    });
    const calm = await deployFunction(server, { name: "calm", code: hello }, otherKey);
    const calmMine = await deployFunction(server, { name: "calm-mine", code: hello });
    const restartsBefore = (await health(server)).restarts;

    const runaway = invoke(server, loop.id);
    // Give the watchdog time to act (a 1 s CPU budget), then measure others.
    await new Promise((r) => setTimeout(r, 3500));
    for (let i = 0; i < 10; i++) {
      const other = await invoke(server, calm.id, otherKey);
      assert.equal(other.status, 200);
      assert.equal(other.text, "hello");
      assert.ok(other.ms < 1500, `a bystander call took ${other.ms} ms`);
      const mine = await invoke(server, calmMine.id);
      assert.equal(mine.status, 200);
    }
    const stuck = await runaway;
    assert.equal(stuck.status, 504);
    assert.match(JSON.parse(stuck.text).error, /exceeded its CPU budget of 1000 ms/);
    assert.ok(stuck.ms < 10_000, `the CPU budget cut the call after ${stuck.ms} ms`);
    await eventually(async () => {
      const h = await health(server);
      return h.restarts > restartsBefore &&
        h.runtime.filter((p: any) => p.tier_mb === 128 && p.state === "ready").length === 2
        ? true
        : undefined;
    }, 20_000);
    const again = await invoke(server, calm.id, otherKey);
    assert.equal(again.status, 200);
    const record = await eventually(async () => {
      const list = (await (
        await server.call("GET", `/functions/${loop.id}/invocations`)
      ).json()) as any;
      return list.data[0];
    });
    assert.equal(record.status, "failed");
    assert.equal(record.status_code, 504);
  });

  it("kill -9 of a workerd process is followed by recovery within seconds", async () => {
    const fn = await deployFunction(server, { name: "after-kill", code: hello });
    const before = await health(server);
    const victim = before.runtime.find((p: any) => p.tier_mb === 128 && p.state === "ready");
    process.kill(victim.pid, "SIGKILL");
    await eventually(async () => {
      const h = await health(server);
      const ready = h.runtime.filter((p: any) => p.tier_mb === 128 && p.state === "ready");
      return h.restarts > before.restarts &&
        ready.length === 2 &&
        !ready.some((p: any) => p.pid === victim.pid)
        ? true
        : undefined;
    }, 15_000);
    for (let i = 0; i < 5; i++) assert.equal((await invoke(server, fn.id)).status, 200);
  });
});

describe("memory", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  const bomb = `async function handler() { const hoard = []; while (true) hoard.push(new Array(1e5).fill(Math.random())); }`;
  const fat = `async function handler() {
    const hoard = [];
    for (let i = 0; i < 170; i++) hoard.push(new Array(131072).fill(i + 0.5)); // ~1 MiB of doubles each
    return new Response("kept " + hoard.length);
  }`;

  it("a memory bomb fails its invocation with a clear error and the process is replaced at once", async () => {
    const fn = await deployFunction(server, { name: "bomb", code: bomb });
    const ok = await deployFunction(server, { name: "fine", code: hello });
    const started = Date.now();
    const res = await invoke(server, fn.id);
    assert.equal(res.status, 500);
    assert.match(JSON.parse(res.text).error, /runtime process .* stopped/);
    assert.ok(Date.now() - started < 10_000);
    await eventually(
      async () => ((await invoke(server, ok.id)).status === 200 ? true : undefined),
      10_000,
    );
  });

  it("runtime_config.memory sets the heap limit: the same allocation fails at 128 MB and succeeds at 256 MB", async () => {
    const small = await deployFunction(server, {
      name: "fat-128",
      code: fat,
      runtime_config: { memory: 128 },
    });
    const large = await deployFunction(server, {
      name: "fat-256",
      code: fat,
      runtime_config: { memory: 256 },
    });
    const big = await invoke(server, large.id);
    assert.equal(big.status, 200);
    assert.equal(big.text, "kept 170");
    const tiny = await invoke(server, small.id);
    assert.equal(tiny.status, 500);
  });

  it("a function that keeps crashing its process is held back with 503, visible on the resource", async () => {
    const fn = await deployFunction(server, { name: "repeat-offender", code: bomb });
    for (let i = 0; i < 3; i++) {
      const res = await invoke(server, fn.id);
      assert.equal(res.status, 500);
      // wait for the replacement before the next strike
      await eventually(async () => {
        const h = await health(server);
        return h.runtime.filter((p: any) => p.tier_mb === 128 && p.state === "ready").length === 2
          ? true
          : undefined;
      }, 15_000);
    }
    const held = await invoke(server, fn.id);
    assert.equal(held.status, 503);
    assert.match(JSON.parse(held.text).error, /held back/);
    assert.ok(Number(held.headers.get("retry-after")) > 0);
    assert.equal(held.id, null);
    const resource = ((await (await server.call("GET", `/functions/${fn.id}`)).json()) as any).data;
    assert.ok(Date.parse(resource.held_until) > Date.now());
  });
});

describe("limits and load", () => {
  let server: TestServer;
  let upstream: http.Server;
  let upstreamUrl: string;
  before(async () => {
    server = await startServer({ env: { WORKERBASE_RATE_LIMIT_PER_MINUTE: "1000" } });
    upstream = http.createServer((_req, res) => res.end("ok"));
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
  });
  after(async () => {
    await server.stop();
    upstream.close();
  });

  it("a response body over the limit fails the invocation with a clear error", async () => {
    const fn = await deployFunction(server, {
      name: "huge",
      code: `async function handler() { return new Response(new Uint8Array(100 * 1024 * 1024 + 1)); }`,
    });
    const res = await invoke(server, fn.id);
    assert.equal(res.status, 500);
    assert.match(JSON.parse(res.text).error, /response body is larger than/);
  });

  it("a console flood keeps the first lines and says the rest was dropped", async () => {
    const fn = await deployFunction(server, {
      name: "flood",
      code: `async function handler() { for (let i = 0; i < 100000; i++) console.log("line", i); return new Response("done"); }`,
    });
    const res = await invoke(server, fn.id);
    assert.equal(res.status, 200);
    const record = await eventually(async () => {
      const list = (await (
        await server.call("GET", `/functions/${fn.id}/invocations`)
      ).json()) as any;
      return list.data[0];
    });
    assert.equal(record.logs.length, 1001);
    assert.equal(record.logs[999].message, "line 999");
    assert.match(record.logs[1000].message, /dropped/);
  });

  it("subrequests past the limit reject with an Error", async () => {
    const fn = await deployFunction(server, {
      name: "chatty",
      code: `async function handler(req) {
        const target = new URL(req.url).searchParams.get("t");
        let ok = 0;
        try { for (let i = 0; i < 60; i++) { await (await fetch(target)).text(); ok++; } }
        catch (err) { return Response.json({ ok, error: err.message }); }
        return Response.json({ ok });
      }`,
    });
    const res = await invoke(server, fn.id, server.key, `?t=${encodeURIComponent(upstreamUrl)}`);
    const body = JSON.parse(res.text);
    assert.equal(body.ok, 50);
    assert.match(body.error, /Too many subrequests/);
  });

  it("200 concurrent invocations are all answered correctly", async () => {
    const fn = await deployFunction(server, {
      name: "concurrent",
      code: `async function handler(req) { const n = new URL(req.url).searchParams.get("n"); await new Promise((r) => setTimeout(r, 10)); return new Response("n=" + n); }`,
    });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, n) => invoke(server, fn.id, server.key, `?n=${n}`)),
    );
    results.forEach((r, n) => {
      assert.equal(r.status, 200);
      assert.equal(r.text, `n=${n}`);
    });
  });

  it("/metrics reports invocations, latency and the runtime in Prometheus text", async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(text, /^workerbase_invocations_total\{host="[^"]+",status="success"\} [1-9]\d*$/m);
    assert.match(text, /^workerbase_invocation_duration_seconds_count\{host="[^"]+"\} [1-9]\d*$/m);
    assert.match(
      text,
      /^workerbase_runtime_isolates\{host="[^"]+",tier_mb="128",process="0",state="ready"\} \d+$/m,
    );
    assert.match(
      text,
      /^workerbase_runtime_resident_bytes\{host="[^"]+",tier_mb="128",process="1",state="ready"\} [1-9]\d*$/m,
    );
  });
});

describe("rate limit", () => {
  it("answers 429 with Retry-After and X-RateLimit headers past the per-key limit", async () => {
    const server = await startServer({ env: { WORKERBASE_RATE_LIMIT_PER_MINUTE: "5" } });
    try {
      const statuses = [];
      let last: Response | undefined;
      for (let i = 0; i < 6; i++) {
        last = await server.call("GET", "/functions");
        statuses.push(last.status);
      }
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
      assert.ok(Number(last!.headers.get("retry-after")) > 0);
      assert.equal(last!.headers.get("x-ratelimit-limit"), "5");
      assert.equal(last!.headers.get("x-ratelimit-remaining"), "0");
      assert.match(((await last!.json()) as any).error, /Rate limit/);
    } finally {
      await server.stop();
    }
  });
});
