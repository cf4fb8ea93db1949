import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import SQLite from "better-sqlite3";
import { Miniflare } from "miniflare";
import pg from "pg";
import type { StoreKind } from "../../src/store/db.js";
import { createTestDatabase, dropTestDatabases, type TestDatabase } from "../helpers/postgres.js";
import { deployFunction, startServer, type TestServer } from "../helpers/server.js";

const suite = fs.readFileSync(new URL("./fixtures/kv-suite.js", import.meta.url), "utf8");

// One operation per invocation, chosen by the JSON body; a thrown error becomes the 500 body.
const tool = `async function handler(request, env) {
  const { op, key, keys, value, options } = await request.json();
  const KV = env.KV;
  switch (op) {
    case "put": return Response.json(await KV.put(key, value, options) ?? null);
    case "putBytes": return Response.json(await KV.put(key, new Uint8Array(value), options) ?? null);
    case "get": return Response.json(await KV.get(key, options));
    case "getBytes": {
      const found = await KV.get(key, "arrayBuffer");
      return Response.json(found && [...new Uint8Array(found)]);
    }
    case "getWithMetadata": return Response.json(await KV.getWithMetadata(key, options));
    case "bulk": return Response.json([...(await KV.get(keys, options))]);
    case "delete": return Response.json(await KV.delete(key) ?? null);
    case "list": return Response.json(await KV.list(options));
  }
  return new Response("unknown op", { status: 400 });
}`;

// Writes and reads back its own key, for the concurrency test.
const writer = `async function handler(request, env) {
  const i = new URL(request.url).searchParams.get("i");
  await env.KV.put("c/" + i, "value-" + i, { metadata: { i } });
  const back = await env.KV.getWithMetadata("c/" + i);
  return Response.json({ value: back.value, metadata: back.metadata });
}`;

/**
 * Where Workerbase deliberately answers otherwise. workerd's binding reads a put's buffer
 * after put() has returned, so bytes changed before the put settles are what get stored;
 * Workerbase stores the bytes as they were when put() was called.
 */
const knownDifferences: Record<string, { miniflare: unknown; ours: unknown }> = {
  value_changed_after_put: {
    miniflare: { ok: { $: "ArrayBuffer", length: 2, head: [9, 9] } },
    ours: { ok: { $: "ArrayBuffer", length: 2, head: [2, 3] } },
  },
};

// The same list order and big values, keys chosen where a text collation would differ from
// byte order (o:B < o:Z < o:a < o:é), values holding every byte value.
const collation = `async function handler(request, env) {
  const KV = env.KV;
  const size = 25 * 1024 * 1024;
  const valueOf = (i) => {
    const pattern = new Uint8Array(256).map((_, b) => (b + i * 37) % 256);
    const value = new Uint8Array(size);
    for (let at = 0; at < size; at += 256) value.set(pattern, at);
    return value;
  };
  const sha256 = async (bytes) =>
    [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))]
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("");
  const names = ["o:é", "o:a", "o:Z", "o:B"];
  const out = { sent: [], back: [], pages: [] };
  for (const [i, name] of names.entries()) {
    const value = valueOf(i);
    out.sent.push([name, await sha256(value)]);
    await KV.put(name, value, { metadata: { i, name } });
  }
  out.list = await KV.list({ prefix: "o:" });
  let cursor;
  do {
    const page = await KV.list({ prefix: "o:", limit: 1, cursor });
    out.pages.push(page);
    cursor = page.cursor;
  } while (cursor && out.pages.length < 10);
  out.prefixed = await KV.list({ prefix: "o:a" });
  for (const name of names) {
    const { value, metadata } = await KV.getWithMetadata(name, "arrayBuffer");
    out.back.push([name, value.byteLength, await sha256(value), metadata]);
  }
  return Response.json(out);
}`;

/** The engines a Workerbase host runs on here: one host on each, shared by every test. */
const engines: StoreKind[] = ["sqlite", "postgres"];
const servers: Partial<Record<StoreKind, TestServer>> = {};
const host = (engine: StoreKind) => servers[engine]!;
let database: TestDatabase;

interface Project {
  id: string;
  key: string;
  tool: string;
  server: TestServer;
}

async function createProject(server: TestServer, name: string) {
  const res = await fetch(`${server.url}/admin/v1/projects`, {
    method: "POST",
    headers: { "x-admin-key": server.adminKey, "content-type": "application/json" },
    body: JSON.stringify({ project: { name } }),
  });
  assert.equal(res.status, 201);
  const { data } = (await res.json()) as any;
  return { id: data.id as string, key: data.api_key as string, server };
}

async function projectWithTool(server: TestServer, name: string): Promise<Project> {
  const project = await createProject(server, name);
  const fn = await deployFunction(server, { name: "kv-tool", code: tool }, project.key);
  assert.equal(fn.status, "deployed", fn.deploy_error);
  return { ...project, tool: fn.id };
}

/** Runs one env.KV operation in the project's tool function. */
async function kv(project: Project, op: string, args: Record<string, unknown> = {}) {
  const res = await fetch(`${project.server.api}/functions/${project.tool}/invoke`, {
    method: "POST",
    headers: { "x-api-key": project.key, "content-type": "application/json" },
    body: JSON.stringify({ op, ...args }),
  });
  const body = (await res.json()) as any;
  if (res.status !== 200) throw new Error(`${op} answered ${res.status}: ${body.error}`);
  return body;
}

/** A data API call with the project's key. */
function api(
  project: Pick<Project, "key" | "server">,
  method: string,
  route: string,
  init: RequestInit = {},
) {
  return fetch(`${project.server.api}${route}`, {
    ...init,
    method,
    headers: { "x-api-key": project.key, ...(init.headers as Record<string, string>) },
  });
}

const value = (key: string) => `/kv/values/${encodeURIComponent(key)}`;

async function allKeys(project: Pick<Project, "key" | "server">, prefix = ""): Promise<string[]> {
  const res = await api(project, "GET", `/kv/keys?prefix=${encodeURIComponent(prefix)}`);
  assert.equal(res.status, 200);
  return ((await res.json()) as any).data.keys.map((k: any) => k.name);
}

/** What `code` answers to a GET, run once under Miniflare with an empty namespace. */
async function underMiniflare(code: string): Promise<Record<string, any>> {
  const mf = new Miniflare({
    modules: true,
    script: `${code}\nexport default { fetch: (r, e) => handler(r, e) }`,
    kvNamespaces: ["KV"],
    compatibilityDate: "2025-11-17",
  });
  try {
    return (await (await mf.dispatchFetch("http://localhost/")).json()) as any;
  } finally {
    await mf.dispose();
  }
}

/** What `code` answers to a GET on the host on `engine`, in a fresh project (an empty namespace). */
async function runOn(engine: StoreKind, name: string, code: string): Promise<Record<string, any>> {
  const server = host(engine);
  const project = await createProject(server, name);
  const fn = await deployFunction(
    server,
    { name, code, runtime_config: { timeout: 120 } },
    project.key,
  );
  assert.equal(fn.status, "deployed", fn.deploy_error);
  const res = await fetch(`${server.api}/functions/${fn.id}/invoke`, {
    headers: { "x-api-key": project.key },
  });
  assert.equal(res.status, 200, `${engine}: ${await res.clone().text()}`);
  return (await res.json()) as Record<string, any>;
}

/**
 * `code` on every host at once: for each engine, a function that gives its answer or throws
 * why there is none, so that one engine's failure leaves the other's comparison reported.
 */
async function onEveryHost(name: string, code: string) {
  const settled = await Promise.allSettled(engines.map((engine) => runOn(engine, name, code)));
  return new Map(
    engines.map((engine, i) => {
      const outcome = settled[i];
      const answer = () => {
        if (outcome.status === "rejected") throw outcome.reason;
        return outcome.value;
      };
      return [engine, answer] as const;
    }),
  );
}

/** Pairs as the store holds them, written past the service (expired ones, for instance). */
async function storeRows(
  engine: StoreKind,
  rows: [string, string, string, string | null, number][],
): Promise<void> {
  const sql = "insert into kv (project_id, key, value, metadata, expiration) values ";
  const params = (row: (typeof rows)[number]) => {
    const [projectId, key, value, metadata, expiration] = row;
    return [projectId, Buffer.from(key), Buffer.from(value), metadata, expiration];
  };
  if (engine === "postgres") {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      for (const row of rows) await client.query(`${sql}($1, $2, $3, $4, $5)`, params(row));
    } finally {
      await client.end();
    }
    return;
  }
  const file = new SQLite(path.join(host(engine).dataDir, "workerbase.db"));
  try {
    file.pragma("busy_timeout = 5000");
    const insert = file.prepare(`${sql}(?, ?, ?, ?, ?)`);
    for (const row of rows) insert.run(...params(row));
  } finally {
    file.close();
  }
}

before(async () => {
  database = await createTestDatabase();
  await Promise.all([
    startServer().then((s) => (servers.sqlite = s)),
    startServer({ env: { DATABASE_URL: database.url } }).then((s) => (servers.postgres = s)),
  ]);
  for (const engine of engines) assert.equal((await host(engine).health()).store, engine);
});
after(async () => {
  await Promise.all(
    Object.values(servers).map(async (server) => {
      await server.stop();
      fs.rmSync(server.dataDir, { recursive: true, force: true });
    }),
  );
  await dropTestDatabases();
});

describe("env.KV side by side with Miniflare, on SQLite and on PostgreSQL", () => {
  it("every case answers as under Miniflare: values, types, metadata, lists, limits and errors", async (t) => {
    const [expected, answers] = await Promise.all([
      underMiniflare(suite),
      onEveryHost("kv-suite", suite),
    ]);

    // The reference itself says what we expect it to, so a shared mistake cannot pass unseen.
    assert.deepEqual(expected.get_text, { ok: "hello" });
    assert.equal(expected.list_order_is_bytes.ok[1], true, "UTF-8 order differs from JS order");
    assert.match(expected.value_over_limit.message, /^KV PUT failed: 413 Value length of 26214401/);
    assert.ok(Object.keys(expected).length > 150);

    for (const [engine, answer] of answers) {
      await t.test(`on ${engine}`, async (t) => {
        const actual = answer();
        assert.deepEqual(Object.keys(actual), Object.keys(expected));
        for (const [name, { miniflare, ours }] of Object.entries(knownDifferences)) {
          await t.test(`${name} (a known difference)`, () => {
            assert.deepStrictEqual(expected[name], miniflare, "Miniflare changed: review the case");
            assert.deepStrictEqual(actual[name], ours);
          });
        }
        for (const name of Object.keys(expected).filter((n) => !(n in knownDifferences))) {
          await t.test(name, () => {
            assert.deepStrictEqual(actual[name], expected[name]);
            // Also the order of properties (`cursor` before `cacheStatus`, map order).
            assert.equal(JSON.stringify(actual[name]), JSON.stringify(expected[name]));
          });
        }
      });
    }
  });

  it("lists o:B, o:Z, o:a, o:é in byte order and keeps 25 MiB values whole, as Miniflare does", async (t) => {
    const [expected, answers] = await Promise.all([
      underMiniflare(collation),
      onEveryHost("kv-collation", collation),
    ]);
    const order = ["o:B", "o:Z", "o:a", "o:é"];
    assert.deepEqual(
      expected.list.keys.map((k: any) => k.name),
      order,
    );
    assert.deepEqual(
      expected.back.map(([, length, sha]: any[]) => [length, sha]),
      expected.sent.map(([, sha]: any[]) => [25 * 1024 * 1024, sha]),
    );
    for (const [engine, answer] of answers) {
      await t.test(`on ${engine}`, () => {
        const actual = answer();
        assert.deepStrictEqual(actual, expected);
        assert.equal(JSON.stringify(actual), JSON.stringify(expected));
      });
    }
  });
});

// The rest on each engine, through functions and the data API.
for (const engine of engines) {
  describe(`KV on a host on ${engine}`, () => {
    let server: TestServer;
    let main: Project;
    before(async () => {
      server = host(engine);
      main = await projectWithTool(server, "kv-main");
    });

    describe("KV expirations", () => {
      it("expired pairs are never returned, by functions or by the data API", async () => {
        const project = await projectWithTool(server, "kv-expiry");
        await kv(project, "put", { key: "live", value: "yes", options: { expirationTtl: 600 } });
        // Pairs whose time has come, as the store holds them until a sweep deletes them.
        const now = Math.floor(Date.now() / 1000);
        await storeRows(engine, [
          [project.id, "gone", "old", '{"m":1}', now - 5],
          [project.id, "gone-now", "old", null, now],
          [project.id, "later", "new", null, now + 3600],
        ]);
        assert.equal(await kv(project, "get", { key: "gone" }), null);
        assert.equal(await kv(project, "get", { key: "gone-now" }), null);
        assert.equal(await kv(project, "get", { key: "later" }), "new");
        assert.deepEqual(await kv(project, "getWithMetadata", { key: "gone" }), {
          value: null,
          metadata: null,
          cacheStatus: null,
        });
        assert.deepEqual(await kv(project, "bulk", { keys: ["gone", "later"] }), [
          ["gone", null],
          ["later", "new"],
        ]);
        const listed = await kv(project, "list");
        assert.deepEqual(
          listed.keys.map((k: any) => k.name),
          ["later", "live"],
        );
        assert.equal(listed.keys[0].expiration, now + 3600);
        const ttl = listed.keys[1].expiration - now;
        assert.ok(ttl >= 598 && ttl <= 602, `expiration ${ttl} s ahead`);

        assert.equal((await api(project, "GET", value("gone"))).status, 404);
        assert.equal((await api(project, "GET", value("gone-now"))).status, 404);
        const later = await api(project, "GET", value("later"));
        assert.equal(later.status, 200);
        assert.equal(later.headers.get("x-kv-expiration"), String(now + 3600));
        assert.deepEqual(await allKeys(project), ["later", "live"]);

        // An expired key can be written again, as if it had never been.
        await kv(project, "put", { key: "gone", value: "again" });
        assert.deepEqual(await kv(project, "getWithMetadata", { key: "gone" }), {
          value: "again",
          metadata: null,
          cacheStatus: null,
        });
      });
    });

    describe("KV isolation between projects", () => {
      it("a second project sees none of the first project's keys, from functions or the data API", async () => {
        const a = await projectWithTool(server, "kv-a");
        const b = await projectWithTool(server, "kv-b");
        await kv(a, "put", {
          key: "shared",
          value: "from-a",
          options: { metadata: { owner: "a" } },
        });
        await kv(a, "put", { key: "only-a", value: "secret-a" });
        assert.equal(await kv(a, "get", { key: "only-a" }), "secret-a");

        assert.equal(await kv(b, "get", { key: "only-a" }), null);
        assert.deepEqual(await kv(b, "getWithMetadata", { key: "shared" }), {
          value: null,
          metadata: null,
          cacheStatus: null,
        });
        assert.deepEqual(await kv(b, "bulk", { keys: ["shared", "only-a"] }), [
          ["shared", null],
          ["only-a", null],
        ]);
        assert.deepEqual(await kv(b, "list"), { keys: [], list_complete: true, cacheStatus: null });
        assert.deepEqual(await allKeys(b), []);
        assert.equal((await api(b, "GET", value("only-a"))).status, 404);

        // Writes and deletes in b leave a's pairs as they were.
        await kv(b, "put", { key: "shared", value: "from-b" });
        assert.equal((await api(b, "DELETE", value("only-a"))).status, 204);
        await kv(b, "delete", { key: "only-a" });
        assert.equal(
          (await api(b, "PUT", value("b-only"), { body: "x" })).status,
          204,
          "data API put in b",
        );
        assert.deepEqual(await kv(a, "getWithMetadata", { key: "shared" }), {
          value: "from-a",
          metadata: { owner: "a" },
          cacheStatus: null,
        });
        assert.equal(await kv(a, "get", { key: "only-a" }), "secret-a");
        assert.deepEqual(await allKeys(a), ["only-a", "shared"]);
        assert.deepEqual(await allKeys(b), ["b-only", "shared"]);
        assert.equal(await (await api(a, "GET", value("shared"))).text(), "from-a");
        assert.equal(await (await api(b, "GET", value("shared"))).text(), "from-b");
      });
    });

    describe("KV data API", () => {
      it("stores, reads, lists and deletes values, shared with the project's functions", async () => {
        const key = "dir/ключ é?&#%+ 😀";
        const bytes = Buffer.from([0, 1, 2, 250, 255, 10, 13]);
        const put = await api(main, "PUT", `${value(key)}?expiration_ttl=120`, {
          body: bytes,
          headers: { "x-kv-metadata": JSON.stringify({ by: "api", note: "é" }) },
        });
        assert.equal(put.status, 204, await put.clone().text());
        const got = await api(main, "GET", value(key));
        assert.equal(got.status, 200);
        assert.equal(got.headers.get("content-type"), "application/octet-stream");
        assert.deepEqual(Buffer.from(await got.arrayBuffer()), bytes);
        assert.deepEqual(JSON.parse(got.headers.get("x-kv-metadata")!), { by: "api", note: "é" });
        const ttl = Number(got.headers.get("x-kv-expiration")) - Math.floor(Date.now() / 1000);
        assert.ok(ttl >= 118 && ttl <= 121, `expires ${ttl} s ahead`);

        // The function sees the same pair, and the API sees what the function writes.
        assert.deepEqual(await kv(main, "getBytes", { key }), [...bytes]);
        assert.deepEqual((await kv(main, "getWithMetadata", { key })).metadata, {
          by: "api",
          note: "é",
        });
        await kv(main, "putBytes", {
          key: "from-fn",
          value: [9, 8, 7],
          options: { metadata: [1] },
        });
        const fromFn = await api(main, "GET", value("from-fn"));
        assert.deepEqual([...new Uint8Array(await fromFn.arrayBuffer())], [9, 8, 7]);
        assert.equal(fromFn.headers.get("x-kv-metadata"), "[1]");
        assert.equal(fromFn.headers.get("x-kv-expiration"), null);

        // Metadata with non-ASCII characters escaped, as a header holds it best.
        const escaped = await api(main, "PUT", value("escaped"), {
          body: "e",
          headers: { "x-kv-metadata": '{"s":"\\u00e9\\ud83d\\ude00"}' },
        });
        assert.equal(escaped.status, 204);
        assert.deepEqual((await kv(main, "getWithMetadata", { key: "escaped" })).metadata, {
          s: "é😀",
        });
        assert.equal(
          (await api(main, "GET", value("escaped"))).headers.get("x-kv-metadata"),
          '{"s":"\\u00e9\\ud83d\\ude00"}',
        );

        // An unencoded slash in the path is part of the key too.
        assert.equal((await api(main, "PUT", "/kv/values/raw/slash", { body: "s" })).status, 204);
        assert.equal(await kv(main, "get", { key: "raw/slash" }), "s");

        const deleted = await api(main, "DELETE", value(key));
        assert.equal(deleted.status, 204);
        const gone = await api(main, "GET", value(key));
        assert.equal(gone.status, 404);
        assert.deepEqual(await gone.json(), { error: "Key not found" });
        assert.equal(await kv(main, "get", { key }), null);
        assert.equal((await api(main, "DELETE", value("never-there"))).status, 204);
      });

      it("lists in byte order a page at a time, like env.KV.list", async () => {
        const names = ["pg/b", "pg/a", "pg/\uff61", "pg/😀", "pg/A", "pg/é", "pg/a/b"];
        for (const name of names) await api(main, "PUT", value(name), { body: name });
        const pages: any[] = [];
        let cursor = "";
        do {
          const res = await api(main, "GET", `/kv/keys?prefix=pg%2F&limit=3&cursor=${cursor}`);
          assert.equal(res.status, 200);
          const { data } = (await res.json()) as any;
          pages.push(data);
          cursor = data.cursor ? encodeURIComponent(data.cursor) : "";
        } while (cursor && pages.length < 10);
        const byBytes = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
        assert.deepEqual(
          pages.flatMap((p) => p.keys.map((k: any) => k.name)),
          byBytes,
        );
        assert.deepEqual(
          pages.map((p) => [p.keys.length, p.list_complete, "cursor" in p]),
          [
            [3, false, true],
            [3, false, true],
            [1, true, false],
          ],
        );
        // The same listing through env.KV.list gives the same pages.
        const first = await kv(main, "list", { options: { prefix: "pg/", limit: 3 } });
        assert.deepEqual(first.keys, pages[0].keys);
        assert.equal(first.cursor, pages[0].cursor);
      });

      it("refuses bad input with a 4xx that names the problem, and changes nothing", async () => {
        await api(main, "PUT", value("keep"), { body: "kept" });
        const before = await allKeys(main);
        const long = "k".repeat(513);
        const cases: [string, string, RequestInit, number, RegExp][] = [
          ["GET", "/kv/keys?limit=abc", {}, 400, /limit/],
          ["GET", "/kv/keys?limit=0", {}, 400, /limit/],
          ["GET", "/kv/keys?limit=1001", {}, 400, /limit/],
          ["GET", "/kv/keys?limit=1.5", {}, 400, /limit/],
          ["GET", `/kv/keys?prefix=${"p".repeat(513)}`, {}, 400, /exceeds key length limit of 512/],
          ["PUT", value(long), { body: "x" }, 400, /UTF-8 encoded length of 513 exceeds/],
          ["GET", value(long), {}, 400, /UTF-8 encoded length of 513 exceeds/],
          ["DELETE", value(long), {}, 400, /UTF-8 encoded length of 513 exceeds/],
          ["PUT", "/kv/values/%FF", { body: "x" }, 400, /Could not URL-decode key name/],
          ["PUT", "/kv/values/%ED%A0%80", { body: "x" }, 400, /Could not URL-decode key name/],
          ["PUT", `${value("keep")}?expiration_ttl=59`, { body: "x" }, 400, /must be at least 60/],
          ["PUT", `${value("keep")}?expiration_ttl=abc`, { body: "x" }, 400, /expiration_ttl/],
          ["PUT", `${value("keep")}?expiration_ttl=0`, { body: "x" }, 400, /greater than 0/],
          [
            "PUT",
            `${value("keep")}?expiration=1000`,
            { body: "x" },
            400,
            /Invalid expiration of 1000/,
          ],
          [
            "PUT",
            value("keep"),
            { body: "x", headers: { "x-kv-metadata": JSON.stringify("m".repeat(1100)) } },
            413,
            /Metadata length of 1102 exceeds limit of 1024/,
          ],
          [
            "PUT",
            value("keep"),
            { body: "x", headers: { "x-kv-metadata": "{not json" } },
            400,
            /Metadata must be valid JSON/,
          ],
          [
            "PUT",
            value("keep"),
            { body: Buffer.alloc(25 * 1024 * 1024 + 1) },
            413,
            /Value length of 26214401 exceeds limit of 26214400/,
          ],
        ];
        for (const [method, route, init, status, message] of cases) {
          const res = await api(main, method, route, init);
          const body = (await res.json()) as any;
          assert.equal(res.status, status, `${method} ${route.slice(0, 60)}: ${body.error}`);
          assert.match(body.error, message, `${method} ${route.slice(0, 60)}`);
        }
        const noKey = await fetch(`${server.api}/kv/keys`);
        assert.equal(noKey.status, 401);
        const noKeyPut = await fetch(`${server.api}${value("keep")}`, { method: "PUT", body: "x" });
        assert.equal(noKeyPut.status, 401);

        assert.deepEqual(await allKeys(main), before);
        const kept = await api(main, "GET", value("keep"));
        assert.equal(await kept.text(), "kept");
        assert.equal(kept.headers.get("x-kv-metadata"), null);
        assert.equal(kept.headers.get("x-kv-expiration"), null);
      });

      it("takes a value of exactly 25 MiB", async () => {
        const big = Buffer.alloc(25 * 1024 * 1024, 7);
        assert.equal((await api(main, "PUT", value("big"), { body: big })).status, 204);
        const back = Buffer.from(await (await api(main, "GET", value("big"))).arrayBuffer());
        assert.equal(back.length, big.length);
        assert.ok(back.equals(big));
        assert.equal((await api(main, "DELETE", value("big"))).status, 204);
      });
    });

    describe("KV under concurrency", () => {
      it("100 concurrent invocations each put and get their own key: no error, no lost write", async () => {
        const project = await createProject(server, "kv-concurrent");
        const fn = await deployFunction(server, { name: "writer", code: writer }, project.key);
        const results = await Promise.all(
          Array.from({ length: 100 }, async (_, i) => {
            const res = await fetch(`${server.api}/functions/${fn.id}/invoke?i=${i}`, {
              headers: { "x-api-key": project.key },
            });
            return { status: res.status, body: (await res.json()) as any };
          }),
        );
        results.forEach(({ status, body }, i) => {
          assert.equal(status, 200, JSON.stringify(body));
          assert.deepEqual(body, { value: `value-${i}`, metadata: { i: String(i) } });
        });
        const withTool = { ...project, tool: "" };
        const res = await api(withTool, "GET", "/kv/keys?prefix=c%2F");
        const { data } = (await res.json()) as any;
        assert.equal(data.keys.length, 100);
        assert.equal(data.list_complete, true);
        for (const entry of data.keys) {
          const i = entry.name.slice(2);
          assert.deepEqual(entry.metadata, { i });
          assert.equal(await (await api(withTool, "GET", value(entry.name))).text(), `value-${i}`);
        }
      });
    });
  });
}
