// TypeScript functions (CONTRACT 8.3), imports (3.3) and what records keep of a call (3.7),
// on the real server: every position a user sees names their own file's line and column.
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
    headers: { "x-api-key": server.key },
  });
  return { status: res.status, text: await res.text(), id: res.headers.get("x-invocation-id") };
}

async function record(fnId: string, invocationId: string | null) {
  return eventually(async () => {
    const res = await server.call("GET", `/functions/${fnId}/invocations?limit=20`);
    const { data } = (await res.json()) as any;
    return data.find((r: any) => r.id === invocationId);
  });
}

const typed = `interface Greeting {
  text: string;
  count: number;
}
enum Level {
  Low = 1,
  High = 10,
}
function pick<T>(items: T[], index: number): T {
  return items[index];
}
type Env = { KV: unknown };

async function handler(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const level = (url.searchParams.get("level") ?? "low") as "low" | "high";
  const greeting: Greeting = { text: pick<string>(["hi", "hello"], 1), count: level === "high" ? Level.High : Level.Low };
  if (url.searchParams.has("fail")) {
    console.log(new Error("logged").stack);
    throw new Error("typed failure");
  }
  return Response.json(greeting satisfies Greeting);
}
`;

describe("TypeScript functions", () => {
  it("run with interfaces, enums, generics and casts; the resource and version say typescript", async () => {
    const fn = await deployFunction(server, { name: "typed", code: typed, language: "typescript" });
    assert.equal(fn.deploy_error, null);
    assert.equal(fn.language, "typescript");
    assert.equal(fn.code, typed, "the draft is the TypeScript source");
    const got = await invoke(fn.id, "?level=high");
    assert.equal(got.status, 200);
    assert.deepEqual(JSON.parse(got.text), { text: "hello", count: 10 });
    const version = await server.call("GET", `/functions/${fn.id}/versions/1`);
    const { data } = (await version.json()) as any;
    assert.equal(data.language, "typescript");
    assert.equal(data.code, typed);
  });

  it("a thrown error's stack and a console stack point at the TypeScript lines", async () => {
    const fn = await deployFunction(server, {
      name: "typed-fails",
      code: typed,
      language: "typescript",
    });
    const got = await invoke(fn.id, "/deep/path?fail=1", { method: "PUT", body: "x" });
    assert.equal(got.status, 500);
    const rec = await record(fn.id, got.id);
    assert.match(rec.error_stack, /^Error: typed failure\n/);
    // `throw new Error("typed failure")` is line 20, column 11 of the source.
    assert.match(rec.error_stack, /function\.ts:20:11/);
    assert.doesNotMatch(rec.error_stack, /workerbase-|function\.js/);
    assert.match(rec.logs[0].message, /function\.ts:19:17/);
    assert.equal(rec.method, "PUT");
    assert.equal(rec.path, "/deep/path?fail=1");
  });

  it("a syntax error's deploy_error names the TypeScript line and column", async () => {
    const fn = await deployFunction(server, {
      name: "typed-broken",
      code: `interface A { x: number }\n\nasync function handler(): Promise<Response> {\n  const a: A = { x: 1 ;\n  return new Response("x");\n}\n`,
      language: "typescript",
    });
    assert.equal(fn.status, "error");
    assert.match(fn.deploy_error, /at line 4, column \d+/);
  });

  it("a top-level throw at start-up names the TypeScript line", async () => {
    const fn = await deployFunction(server, {
      name: "typed-startup",
      code: `type X = number;\nconst n: X = 1;\n\n\nif (n === 1) throw new Error("at start");\nasync function handler(): Promise<Response> { return new Response("x"); }\n`,
      language: "typescript",
    });
    assert.equal(fn.status, "error");
    assert.match(fn.deploy_error, /at start at line 5, column \d+/);
  });

  it("the same code as javascript fails its deploy (types are not JavaScript)", async () => {
    const fn = await deployFunction(server, { name: "not-js", code: typed });
    assert.equal(fn.status, "error");
    assert.match(fn.deploy_error, /SyntaxError/);
  });
});

describe("records of JavaScript functions", () => {
  it("keep the user's frames of an uncaught error without the wrapper's, and method and path", async () => {
    const fn = await deployFunction(server, {
      name: "thrower",
      code: `async function handler(request) {\n  const x = 1;\n  throw new Error("boom " + x);\n}`,
    });
    const got = await invoke(fn.id);
    assert.equal(got.status, 500);
    const body = JSON.parse(got.text);
    assert.equal(body.error, "Error: boom 1");
    assert.equal(body.stack, undefined, "callers get no stack");
    const rec = await record(fn.id, got.id);
    assert.match(rec.error_stack, /^Error: boom 1\n\s+at handler \(function\.js:3:9\)/);
    assert.doesNotMatch(rec.error_stack, /workerbase-main\.js|workerbase-setup\.js/);
    assert.equal(rec.method, "GET");
    assert.equal(rec.path, "/");
  });
});

describe("imports", () => {
  const cases: [string, string[] | undefined, RegExp | null][] = [
    [
      `import _ from "lodash";\nasync function handler() { return new Response(_.VERSION); }`,
      undefined,
      /imports "lodash" \(line 1\), but a function is one file: bundle it.*npx esbuild index\.js --bundle/,
    ],
    [
      `import { helper } from "./helper.js";\nexport async function handler() { return new Response(helper()); }`,
      undefined,
      /imports "\.\/helper\.js" \(line 1\), but a function is one file/,
    ],
    [
      `import { Buffer } from "node:buffer";\nasync function handler() { return new Response("x"); }`,
      undefined,
      /"node:buffer".*nodejs_compat/,
    ],
    [
      `import fs from "fs";\nasync function handler() { return new Response("x"); }`,
      undefined,
      /"node:fs"/,
    ],
    [
      `import { Buffer } from "node:buffer";\nasync function handler() { return new Response(Buffer.from("hi").toString("base64")); }`,
      ["nodejs_compat"],
      null,
    ],
    [
      `import { WorkerEntrypoint } from "cloudflare:workers";\nasync function handler() { return new Response(typeof WorkerEntrypoint); }`,
      undefined,
      null,
    ],
  ];
  it("cloudflare:* works, node:* under nodejs_compat, anything else fails the deploy saying how to bundle", async () => {
    for (const [code, flags, expected] of cases) {
      const fn = await deployFunction(server, {
        name: `imports-${Math.random().toString(36).slice(2, 8)}`,
        code,
        ...(flags ? { runtime_config: { compatibility_flags: flags } } : {}),
      });
      if (expected === null) {
        assert.equal(fn.deploy_error, null, code);
        assert.equal((await invoke(fn.id)).status, 200);
      } else {
        assert.equal(fn.status, "error", code);
        assert.match(fn.deploy_error, expected);
      }
    }
  });

  it("a TypeScript import type is removed, an npm import names its TypeScript line", async () => {
    const ok = await deployFunction(server, {
      name: "ts-import-type",
      language: "typescript",
      code: `import type { Thing } from "some-package";\nasync function handler(): Promise<Response> { const t: Thing | null = null; return new Response(String(t)); }`,
    });
    assert.equal(ok.deploy_error, null);
    const bad = await deployFunction(server, {
      name: "ts-import-npm",
      language: "typescript",
      code: `type A = string;\n\nimport { z } from "zod";\nasync function handler(): Promise<Response> { return new Response(String(z)); }`,
    });
    assert.match(bad.deploy_error, /imports "zod" \(line 3\)/);
  });
});
