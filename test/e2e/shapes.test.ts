// Both shapes of code (CONTRACT 3.3) on the real server: the hosted original's top-level
// `handler`, and Workers module syntax as Cloudflare users write it, `ctx` included.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { deployFunction, eventually, startServer, type TestServer } from "../helpers/server.js";

let server: TestServer;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

async function invoke(id: string, sub = "", init: RequestInit = {}) {
  const res = await fetch(`${server.api}/functions/${id}/invoke${sub}`, {
    ...init,
    headers: { "x-api-key": server.key, ...(init.headers as Record<string, string>) },
  });
  return { status: res.status, text: await res.text() };
}

async function deploy(name: string, code: string) {
  const fn = await deployFunction(server, { name, code });
  assert.equal(fn.deploy_error, null, fn.deploy_error);
  return fn;
}

describe("Workers module syntax", () => {
  it("an export default object literal answers with fetch(request, env, ctx)", async () => {
    const fn = await deploy(
      "module-literal",
      `export default {
        async fetch(request, env, ctx) {
          await env.KV.put("seen", request.method);
          return Response.json({
            method: request.method,
            kv: await env.KV.get("seen"),
            ctx: [typeof ctx.waitUntil, typeof ctx.passThroughOnException],
          });
        },
      };`,
    );
    const got = await invoke(fn.id, "", { method: "POST", body: "x" });
    assert.equal(got.status, 200);
    assert.deepEqual(JSON.parse(got.text), {
      method: "POST",
      kv: "POST",
      ctx: ["function", "function"],
    });
  });

  it("an app object built in the file (fetch as a property, as Hono has it) routes sub-paths", async () => {
    const fn = await deploy(
      "module-app",
      `class App {
        constructor() {
          this.routes = new Map();
          this.fetch = (request, env, ctx) => this.handle(request, env, ctx);
        }
        get(path, fn) { this.routes.set(path, fn); return this; }
        handle(request, env, ctx) {
          const path = new URL(request.url).pathname.replace(/^.*\\/invoke/, "") || "/";
          const route = this.routes.get(path);
          return route ? route(request, env, ctx) : new Response("no route " + path, { status: 404 });
        }
      }
      const app = new App()
        .get("/", () => new Response("home"))
        .get("/hello", () => new Response("hello from the app"));
      export default app;`,
    );
    assert.deepEqual(await invoke(fn.id), { status: 200, text: "home" });
    assert.deepEqual(await invoke(fn.id, "/hello"), { status: 200, text: "hello from the app" });
    assert.deepEqual(await invoke(fn.id, "/nope"), { status: 404, text: "no route /nope" });
  });

  it("a class instance's fetch method runs with `this` bound to the instance", async () => {
    const fn = await deploy(
      "module-class",
      `class Greeter {
        constructor() { this.greeting = "bound this"; }
        async fetch() { return new Response(this.greeting); }
      }
      export default new Greeter();`,
    );
    assert.deepEqual(await invoke(fn.id), { status: 200, text: "bound this" });
  });

  it("ctx.waitUntil lets work finish after the response, its console lines and rejections in the record", async () => {
    const fn = await deploy(
      "module-wait",
      `export default {
        async fetch(request, env, ctx) {
          ctx.passThroughOnException();
          console.log("before the answer");
          ctx.waitUntil((async () => {
            await new Promise((r) => setTimeout(r, 1000));
            await env.KV.put("later", "landed");
            console.log("after the answer");
          })());
          ctx.waitUntil(Promise.reject(new Error("background failed")));
          return new Response("answered first");
        },
      };`,
    );
    const other = await deploy(
      "module-other",
      `export default { fetch: () => new Response("x") };`,
    );
    const started = Date.now();
    const res = await fetch(`${server.api}/functions/${fn.id}/invoke`, {
      headers: { "x-api-key": server.key },
    });
    assert.equal(await res.text(), "answered first");
    assert.ok(Date.now() - started < 5000);
    // Another call's record is written meanwhile: this one still waits for its later lines.
    assert.equal((await invoke(other.id)).text, "x");
    await new Promise((r) => setTimeout(r, 300));
    const value = await eventually(async () => {
      const got = await fetch(`${server.api}/kv/values/later`, {
        headers: { "x-api-key": server.key },
      });
      return got.status === 200 ? got.text() : undefined;
    });
    assert.equal(value, "landed");
    const id = res.headers.get("x-invocation-id");
    const record = await eventually(async () => {
      const got = await server.call("GET", `/functions/${fn.id}/invocations`);
      return ((await got.json()) as any).data.find((r: any) => r.id === id);
    });
    assert.deepEqual(
      record.logs.map((l: any) => [l.level, l.message]),
      [
        ["log", "before the answer"],
        ["log", "after the answer"],
        ["error", "Uncaught (in ctx.waitUntil) Error: background failed"],
      ],
    );
    assert.equal(record.status, "success");
  });

  it("the hosted original's handler receives ctx too", async () => {
    const fn = await deploy(
      "handler-ctx",
      `async function handler(request, env, ctx) {
        ctx.waitUntil(Promise.resolve());
        return new Response(typeof ctx.waitUntil);
      }`,
    );
    assert.deepEqual(await invoke(fn.id), { status: 200, text: "function" });
  });

  it("a module without fetch answers an HTTP call with 500 saying it runs only on schedule", async () => {
    const fn = await deploy(
      "module-scheduled",
      `export default { async scheduled(controller, env, ctx) {} };`,
    );
    const got = await invoke(fn.id);
    assert.equal(got.status, 500);
    assert.match(JSON.parse(got.text).error, /runs only on schedule/);
  });
});
