import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { deployFunction, startServer, type TestServer } from "../helpers/server.js";
import { cli, json, type CliResult } from "../helpers/cli.js";

let server: TestServer;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

/** Fails loudly if the API routes a command needs are missing from the server. */
async function needsRoute(_t: TestContext, method: string, route: string, body?: unknown) {
  const res = await server.call(method, route, body);
  const text = await res.text();
  assert.ok(!(res.status === 404 && text.includes('"Not found"')), `${route} is not served`);
  return true;
}

const envReader = `async function handler(request, env) {
  return Response.json({ token: env.API_TOKEN ?? null, shared: env.SHARED ?? null, conf: env.CONF ?? null });
}`;

function printed(...results: CliResult[]): string {
  return results.map((r) => r.stdout + r.stderr).join("\n");
}

describe("workerbase secrets", () => {
  it("sets, lists and deletes function and project secrets without ever printing a value", async (t) => {
    if (!(await needsRoute(t, "GET", "/secrets"))) return;
    await deployFunction(server, { name: "Env reader", code: envReader });
    const runs: CliResult[] = [];
    const run = async (args: string[], input?: string) => {
      const r = await cli(server, args, { input });
      runs.push(r);
      return r;
    };

    const fromArg = await run(["secrets", "set", "env-reader", "API_TOKEN", "tok-value-1"]);
    assert.equal(fromArg.code, 0, fromArg.stderr);
    assert.equal(fromArg.stdout, "set API_TOKEN (text) for function env-reader\n");
    // From stdin (not a terminal): one trailing newline is dropped.
    const fromStdin = await run(["secrets", "set", "--project", "SHARED"], "shared-value-2\n");
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.equal(fromStdin.stdout, "set SHARED (text) for the project\n");
    const asJson = await run(
      ["secrets", "set", "--project", "CONF", "--type", "json"],
      '{"a":[1,2]}',
    );
    assert.equal(asJson.code, 0, asJson.stderr);

    const invoked = await run(["functions", "invoke", "env-reader"]);
    assert.deepEqual(JSON.parse(invoked.stdout), {
      token: "tok-value-1",
      shared: "shared-value-2",
      conf: '{"a":[1,2]}',
    });
    runs.pop(); // that output is the function's own, which may show what it likes

    const listed = json(await run(["secrets", "list", "env-reader", "--json"]));
    const byName = Object.fromEntries(listed.data.map((s: any) => [s.name, s.type]));
    assert.deepEqual(byName, { API_TOKEN: "text", SHARED: "inherited", CONF: "inherited" });
    const table = await run(["secrets", "list", "env-reader"]);
    assert.match(table.stdout, /^NAME\s+TYPE\s+FROM/);
    assert.match(table.stdout, /^API_TOKEN\s+text\s+function/m);
    assert.match(table.stdout, /^SHARED\s+-\s+project/m);
    const project = json(await run(["secrets", "list", "--project", "--json"]));
    assert.deepEqual(project.data.map((s: any) => s.name).sort(), ["CONF", "SHARED"]);

    const badName = await run(["secrets", "set", "env-reader", "lower", "x"]);
    assert.equal(badName.code, 2);
    const badJson = await run(["secrets", "set", "--project", "J", "--type", "json"], "not json {");
    assert.equal(badJson.code, 1);
    assert.match(badJson.stderr, /not valid JSON/);

    const deleted = await run(["secrets", "delete", "env-reader", "API_TOKEN"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    const after = json(await run(["secrets", "list", "env-reader", "--json"]));
    assert.ok(!after.data.some((s: any) => s.name === "API_TOKEN"));
    assert.equal((await run(["secrets", "delete", "--project", "SHARED"])).code, 0);

    for (const value of ["tok-value-1", "shared-value-2", "[1,2]", "not json {"]) {
      assert.ok(!printed(...runs).includes(value), `no command printed ${value}`);
    }
  });
});

describe("workerbase kv", () => {
  it("puts, gets, lists and deletes keys", async (t) => {
    if (!(await needsRoute(t, "GET", "/kv/keys"))) return;
    const put = await cli(server, ["kv", "put", "user:1", "alice"]);
    assert.equal(put.code, 0, put.stderr);
    assert.equal((await cli(server, ["kv", "put", "user:2"], { input: "bob" })).code, 0);
    const ttl = await cli(server, ["kv", "put", "tmp/a b", "x", "--ttl", "120"]);
    assert.equal(ttl.code, 0, ttl.stderr);
    assert.equal((await cli(server, ["kv", "put", "k", "v", "--ttl", "5"])).code, 2);

    const got = await cli(server, ["kv", "get", "user:1"]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, "alice");
    assert.equal(json(await cli(server, ["kv", "get", "tmp/a b", "--json"])).value, "x");

    const listed = json(await cli(server, ["kv", "list", "--prefix", "user:", "--json"]));
    assert.deepEqual(
      listed.data.keys.map((k: any) => k.name),
      ["user:1", "user:2"],
    );
    assert.equal(listed.data.list_complete, true);
    const table = await cli(server, ["kv", "list"]);
    assert.match(table.stdout, /^KEY\s+EXPIRES/);
    assert.match(table.stdout, /^tmp\/a b\s+\d{4}-/m);

    assert.equal((await cli(server, ["kv", "delete", "user:1"])).code, 0);
    const missing = await cli(server, ["kv", "get", "user:1"]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'error: key "user:1" not found\n');
  });
});

describe("workerbase db", () => {
  it("runs queries with parameters and lists tables", async (t) => {
    if (!(await needsRoute(t, "GET", "/database_tables"))) return;
    const created = await cli(server, [
      "db",
      "query",
      "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
    ]);
    assert.equal(created.code, 0, created.stderr);
    const inserted = await cli(server, [
      "db",
      "query",
      "INSERT INTO notes (body) VALUES (?), (?)",
      "--params",
      '["one", "two"]',
      "--json",
    ]);
    assert.equal(inserted.code, 0, inserted.stderr);
    assert.equal(json(inserted).data.meta.changes, 2);

    const selected = json(
      await cli(server, [
        "db",
        "query",
        "SELECT body FROM notes WHERE id = ?",
        "--params",
        "[2]",
        "--json",
      ]),
    );
    assert.deepEqual(selected.data.results, [{ body: "two" }]);
    const table = await cli(server, ["db", "query", "SELECT id, body FROM notes ORDER BY id"]);
    assert.match(table.stdout, /^id\s+body\n1\s+one\n2\s+two\n2 rows/m);

    const several = json(
      await cli(server, ["db", "query", "SELECT 1 AS a; SELECT 2 AS b", "--json"]),
    );
    assert.ok(Array.isArray(several.data));
    assert.equal(several.data.length, 2);

    const tables = await cli(server, ["db", "tables", "--json"]);
    assert.equal(tables.code, 0, tables.stderr);
    assert.ok(JSON.stringify(json(tables)).includes("notes"));
    const text = await cli(server, ["db", "tables"]);
    assert.match(text.stdout, /^notes\s+2\s+/m);

    const bad = await cli(server, ["db", "query", "SELEC nonsense"]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim().split("\n").length, 1);
    assert.equal((await cli(server, ["db", "query", "SELECT 1", "--params", "{}"])).code, 2);
  });
});

describe("workerbase projects and keys", () => {
  it("creates projects and keys with the admin key; a wrong one is named", async () => {
    const admin = { WORKERBASE_ADMIN_KEY: server.adminKey };
    const created = await cli(server, ["projects", "create", "Second", "--json"], { env: admin });
    assert.equal(created.code, 0, created.stderr);
    const project = json(created).data;
    assert.match(project.api_key, /^wb_/);

    const list = json(await cli(server, ["projects", "list", "--json"], { env: admin }));
    assert.deepEqual(list.data.map((p: any) => p.name).sort(), ["Second", "default"]);

    const key = await cli(server, ["keys", "create", "--project", project.id, "--json"], {
      env: admin,
    });
    assert.equal(key.code, 0, key.stderr);
    const newKey = json(key).data.api_key;
    const keys = json(
      await cli(server, ["keys", "list", "--project", project.id, "--json"], { env: admin }),
    );
    assert.equal(keys.data.length, 2);
    assert.ok(!JSON.stringify(keys).includes(newKey), "key listings never hold keys");

    // The new key works, and sees only its own project's (empty) functions.
    const scoped = json(
      await cli(server, ["functions", "list", "--json"], { env: { WORKERBASE_API_KEY: newKey } }),
    );
    assert.deepEqual(scoped.data, []);

    const missing = await cli(server, ["projects", "list"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no admin key: pass --admin-key or set WORKERBASE_ADMIN_KEY/);
    const wrong = await cli(server, ["projects", "list", "--admin-key", "admin_wrong_0123456789"]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused the admin key admin_wr… \(from --admin-key\)/);
    const noProject = await cli(server, ["keys", "create"], { env: admin });
    assert.equal(noProject.code, 2);
  });
});

describe("workerbase db export and import", () => {
  it("copies a database to another project through a file, with progress for a large one", async (t) => {
    if (!(await needsRoute(t, "GET", "/database/export"))) return;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-cli-export-"));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const setup = await cli(server, [
      "db",
      "query",
      "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT, price REAL, cover BLOB);" +
        " INSERT INTO books VALUES (1, 'Rock''n''roll\nvol. 1', 9.5, X'CAFE'), (2, 'Zoë', NULL, NULL)",
    ]);
    assert.equal(setup.code, 0, setup.stderr);

    const file = path.join(dir, "books.sql");
    const exported = await cli(server, ["db", "export", "--output", file]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal(exported.stdout, "");
    assert.match(exported.stderr, new RegExp(`^wrote [\\d.]+ (bytes|KiB) of SQL to ${file}\\n$`));
    const toStdout = await cli(server, ["db", "export"]);
    assert.equal(toStdout.code, 0, toStdout.stderr);
    assert.equal(toStdout.stdout, fs.readFileSync(file, "utf8"));
    assert.match(toStdout.stdout, /^CREATE TABLE books/m);

    const created = await cli(server, ["projects", "create", "Imported", "--json"], {
      env: { WORKERBASE_ADMIN_KEY: server.adminKey },
    });
    assert.equal(created.code, 0, created.stderr);
    const other = { WORKERBASE_API_KEY: json(created).data.api_key };
    const imported = await cli(server, ["db", "import", file], { env: other });
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(
      imported.stdout,
      /^imported .*books\.sql: \d+ statements run, \d+ rows changed\n$/,
    );
    assert.equal(imported.stderr, "", "no progress lines for a small file");
    const copied = json(
      await cli(
        server,
        [
          "db",
          "query",
          "SELECT id, title, price, hex(cover) AS cover FROM books ORDER BY id",
          "--json",
        ],
        {
          env: other,
        },
      ),
    );
    assert.deepEqual(copied.data.results, [
      { id: 1, title: "Rock'n'roll\nvol. 1", price: 9.5, cover: "CAFE" },
      { id: 2, title: "Zoë", price: null, cover: "" },
    ]);

    // Importing it again fails on its CREATE TABLE, in one line, and changes nothing.
    const again = await cli(server, ["db", "import", file], { env: other });
    assert.equal(again.code, 1);
    assert.match(
      again.stderr,
      /^error: Statement \d+ \(CREATE TABLE \w+ .*\) failed: table \w+ already exists.*; nothing was imported\n$/,
    );

    // A file of a few MiB reports its upload on stderr (a line at each quarter, not a terminal).
    const big = path.join(dir, "big.sql");
    const rows = Array.from(
      { length: 40_000 },
      (_, i) => `INSERT INTO pages VALUES (${i}, '${"page text ".repeat(8)}');`,
    );
    fs.writeFileSync(
      big,
      ["CREATE TABLE pages (n INTEGER PRIMARY KEY, body TEXT);", ...rows].join("\n"),
    );
    const large = await cli(server, ["db", "import", big, "--json"], { env: other });
    assert.equal(large.code, 0, large.stderr);
    assert.deepEqual(json(large).data, { statements: 40_001, skipped: 0, changes: 40_000 });
    const progress = large.stderr.trim().split("\n");
    assert.ok(progress.length >= 4 && progress.length <= 5, large.stderr);
    const mib = (fs.statSync(big).size / 1024 / 1024).toFixed(1);
    assert.equal(
      progress[progress.length - 1],
      `uploading big.sql: ${mib} MiB of ${mib} MiB (100%)`,
    );

    const missing = await cli(server, ["db", "import", path.join(dir, "nope.sql")]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /SQL file .*nope\.sql does not exist/);
    assert.equal((await cli(server, ["db", "import"])).code, 2);
  });
});
