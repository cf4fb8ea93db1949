// Export and import of a project database over the platform API, against a real server: an
// export imported into another project recreates every row and value exactly, loads in the
// real sqlite3 shell, and an import that fails anywhere changes nothing.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import SQLite from "better-sqlite3";
import { ProjectDatabase } from "../../src/db/service.js";
import { startServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wb-d1-export-"));
/** The sqlite3 shell, when this machine has one (Debian's `sqlite3` package). */
const sqlite3 = spawnSync("sqlite3", ["-version"]).status === 0;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function newProject(name: string): Promise<string> {
  const res = await fetch(`${server.url}/admin/v1/projects`, {
    method: "POST",
    headers: { "x-admin-key": server.adminKey, "content-type": "application/json" },
    body: JSON.stringify({ project: { name } }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as any).data.api_key;
}

/** Runs SQL through the data API as the project of `key`; the last statement's rows. */
async function query(key: string, sql: string, params?: unknown[]): Promise<any[]> {
  const res = await fetch(`${server.api}/database/query`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify({ sql, ...(params ? { params } : {}) }),
  });
  const body = (await res.json()) as any;
  assert.equal(res.status, 200, JSON.stringify(body));
  return Array.isArray(body.data) ? body.data[body.data.length - 1].results : body.data.results;
}

async function exportSql(key: string): Promise<Response> {
  return fetch(`${server.api}/database/export`, { headers: { "x-api-key": key } });
}

async function importSql(
  key: string,
  body: string | Buffer,
  type = "application/sql",
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.api}/database/import`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": type },
    body: typeof body === "string" ? body : new Uint8Array(body),
  });
  return { status: res.status, body: await res.json() };
}

const columns = {
  people: ["id", "name", "score", "photo", "note"],
  events: ["person", "at", "payload", "weight", "raw", "big"],
};

/**
 * Every row of a table, each value with its type: reals as numbers (a JSON number is the
 * exact double), text as its bytes in hex (all of them, past a NUL too), the rest as
 * SQLite's own quote() of it.
 */
function snapshotSql(table: keyof typeof columns): string {
  const cells = columns[table].map(
    (c) =>
      `typeof(${c}) AS "${c}:type", CASE WHEN typeof(${c}) = 'real' AND abs(${c}) < 9e999` +
      ` THEN ${c} WHEN typeof(${c}) = 'text' THEN hex(${c}) ELSE quote(${c}) END AS "${c}"`,
  );
  return `SELECT rowid AS "rowid", ${cells.join(", ")} FROM ${table} ORDER BY rowid`;
}

async function snapshot(key: string) {
  return {
    people: await query(key, snapshotSql("people")),
    events: await query(key, snapshotSql("events")),
    view: await query(key, "SELECT * FROM scored ORDER BY name"),
    schema: await query(
      key,
      "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
    ),
  };
}

const schema = `
CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, score REAL, photo BLOB, note TEXT);
CREATE TABLE events (person INTEGER REFERENCES people(id), at INTEGER, payload TEXT, weight REAL, raw BLOB, big INTEGER);
CREATE INDEX events_by_person ON events (person, at);
CREATE VIEW scored AS SELECT name, score FROM people WHERE score IS NOT NULL;
CREATE TRIGGER count_event AFTER INSERT ON events BEGIN UPDATE people SET note = 'had an event; ' || coalesce(note, '') WHERE id = NEW.person; END;
`;

/** Rows of every type: text with quotes, newlines, `;` and unicode, blobs, NULLs, edge reals. */
async function fill(key: string): Promise<void> {
  await query(key, schema);
  const people: unknown[][] = [
    ['O\'Brien "the" first', 0.1, [0, 1, 39, 255], "line one\nline two; -- not a comment"],
    ["Zoë 😀 日本語", -2.5e-300, [], null],
    ["one", 1.0, null, "'quoted'\r\n"],
    ["gone", 3, null, null],
    ["tiny", 5e-324, [0x58, 0x27], ""],
    ["max", 1.7976931348623157e308, null, "x"],
    ["tricky", 0.30000000000000004, null, "/* not a comment */"],
  ];
  for (const row of people)
    await query(key, "INSERT INTO people (name, score, photo, note) VALUES (?, ?, ?, ?)", row);
  await query(key, "UPDATE people SET score = 1e308 * 10 WHERE name = 'max'");
  // The counter now runs ahead of the rows: an import must keep it.
  await query(key, "DELETE FROM people WHERE name = 'gone'");
  await query(
    key,
    `INSERT INTO events VALUES (1, 1700000000000, '{"a":"b;c"}', 2.5, X'DEADBEEF', 9007199254740993);
     INSERT INTO events VALUES (2, -1, 'π', NULL, NULL, -9223372036854775808);
     INSERT INTO events VALUES (NULL, 0, NULL, 123456789012345678.0, X'00', 9223372036854775807);
     INSERT INTO events VALUES (1, 2, 'nul' || char(0) || 'inside', -0.0, X'', 0)`,
  );
}

describe("GET /database/export and POST /database/import", () => {
  let source: string;
  let exported: string;

  before(async () => {
    source = server.key;
    await fill(source);
    const res = await exportSql(source);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/sql\b/);
    exported = await res.text();
  });

  it("exports the schema, then every row as an INSERT, then indexes, views and triggers", () => {
    const lines = exported.trimEnd().split("\n");
    assert.equal(lines[0], "PRAGMA defer_foreign_keys=TRUE;");
    const at = (pattern: RegExp) => lines.findIndex((l) => pattern.test(l));
    assert.ok(at(/^CREATE TABLE people/) < at(/^CREATE TABLE events/));
    assert.ok(at(/^CREATE TABLE events/) < at(/^INSERT INTO "people"/));
    assert.ok(at(/^INSERT INTO "events"/) < at(/^CREATE INDEX events_by_person/));
    assert.ok(at(/^INSERT INTO "events"/) < at(/^CREATE TRIGGER count_event/));
    assert.ok(at(/^CREATE VIEW scored/) > 0);
    assert.ok(!/CREATE TABLE sqlite_/.test(exported), "SQLite's own tables are not exported");
    assert.ok(exported.includes(`VALUES(1,'O''Brien "the" first',0.1,X'000127FF',`));
    assert.ok(exported.includes(",9007199254740993);"), "integers past 2^53 are written in full");
    assert.ok(exported.includes(",9.0e+999,"), "infinity is written as a real");
    assert.ok(exported.includes(",1.0,"), "an integral real stays a real");
  });

  it("imported into another project, it recreates every row, value and type", async () => {
    const target = await newProject("export target");
    const before = await snapshot(source);
    const imported = await importSql(target, exported);
    assert.equal(imported.status, 200, JSON.stringify(imported.body));
    // The PRAGMA, 2 tables, 6 + 4 rows, 2 for the counter, the index, the view, the trigger.
    assert.equal(imported.body.data.statements, 18);
    assert.equal(imported.body.data.skipped, 0);
    assert.deepEqual(await snapshot(target), before);
    // The trigger is there and works, and it did not fire while the rows loaded.
    await query(target, "INSERT INTO events (person, at) VALUES (2, 3)");
    const [zoe] = await query(target, "SELECT note FROM people WHERE id = 2");
    assert.equal(zoe.note, "had an event; had an event; ");
    // The AUTOINCREMENT counter came along: the deleted row's id is not given out again.
    await query(target, "INSERT INTO people (name) VALUES ('new')");
    const [fresh] = await query(target, "SELECT id FROM people WHERE name = 'new'");
    assert.equal(fresh.id, 8);
    // And the index is used.
    const plan = await query(target, "EXPLAIN QUERY PLAN SELECT * FROM events WHERE person = 1");
    assert.match(JSON.stringify(plan), /events_by_person/);
  });

  it("loads in the sqlite3 shell as it is, and the shell's .dump imports back", async (t) => {
    const file = path.join(tmp, "shell.db");
    let db: SQLite.Database;
    if (sqlite3) {
      const loaded = spawnSync("sqlite3", ["-bail", file], { input: exported, encoding: "utf8" });
      assert.equal(loaded.status, 0, loaded.stderr);
      assert.equal(loaded.stderr, "");
      db = new SQLite(file);
    } else {
      t.diagnostic("no sqlite3 shell here: loading the export with better-sqlite3's exec");
      db = new SQLite(file);
      db.exec(exported);
    }
    const rows = (table: keyof typeof columns) => db.prepare(snapshotSql(table)).all();
    const expected = await snapshot(source);
    // The shell may be an older SQLite, which reads some decimal texts one unit in the
    // last place off (see docs/decisions.md); everything else must be exact.
    const close = (a: any[], b: any[]) =>
      a.length === b.length &&
      a.every((row, i) =>
        Object.keys(row).every((k) =>
          typeof row[k] === "number" && typeof b[i][k] === "number"
            ? Math.abs(row[k] - b[i][k]) <= Math.abs(b[i][k]) * 1e-15
            : row[k] === b[i][k],
        ),
      );
    assert.ok(close(rows("people"), expected.people), JSON.stringify(rows("people")));
    assert.ok(close(rows("events"), expected.events), JSON.stringify(rows("events")));
    assert.deepEqual(db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'people'").get(), {
      seq: 7,
    });
    // sqlite3's own .dump (of 3.40 here) cuts text at a NUL, so that row stays out of it.
    db.prepare("DELETE FROM events WHERE instr(payload, char(0)) > 0").run();
    db.close();
    if (!sqlite3) return;
    // sqlite3's own dump: PRAGMA foreign_keys=OFF, BEGIN TRANSACTION ... COMMIT.
    const dump = spawnSync("sqlite3", [file, ".dump"], { encoding: "utf8" });
    assert.equal(dump.status, 0, dump.stderr);
    assert.match(dump.stdout, /^BEGIN TRANSACTION;$/m);
    const target = await newProject("from the shell");
    const imported = await importSql(target, dump.stdout);
    assert.equal(imported.status, 200, JSON.stringify(imported.body));
    assert.equal(imported.body.data.skipped, 2, "its BEGIN and COMMIT are left out");
    const copy = await snapshot(target);
    assert.ok(close(copy.people, expected.people));
    const nul = Buffer.from("nul\0inside").toString("hex").toUpperCase();
    const withoutNul = expected.events.filter((e) => e.payload !== nul);
    assert.equal(withoutNul.length, expected.events.length - 1);
    assert.ok(close(copy.events, withoutNul), JSON.stringify(copy.events));
  });

  it("an import whose last statement fails changes nothing and names that statement", async () => {
    const target = await newProject("failing import");
    assert.equal((await importSql(target, exported)).status, 200);
    const before = await snapshot(target);
    const failing = [
      "INSERT INTO people (name) VALUES ('added');",
      "UPDATE events SET at = 0;",
      "CREATE TABLE extra (x);",
      "INSERT INTO extra VALUES (1);",
      "INSERT INTO people (id, name) VALUES (1, 'a duplicate id of an existing person');",
    ].join("\n");
    const res = await importSql(target, failing);
    assert.equal(res.status, 400);
    assert.match(
      res.body.error,
      /^Statement 5 \(INSERT INTO people \(id, name\) VALUES \(1, 'a duplicate id of…\) failed: UNIQUE constraint failed: people\.id/,
    );
    assert.match(res.body.error, /nothing was imported$/);
    assert.equal(res.body.details.statement, 5);
    assert.deepEqual(await snapshot(target), before);
    assert.deepEqual(
      await query(target, "SELECT name FROM sqlite_schema WHERE name = 'extra'"),
      [],
    );
  });

  it("takes a wrangler-style file: D1's PRAGMA, rows before the rows they refer to", async () => {
    const target = await newProject("wrangler style");
    const file = [
      "PRAGMA defer_foreign_keys=TRUE;",
      "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL REFERENCES parent(id));",
      "CREATE TABLE parent (id INTEGER PRIMARY KEY);",
      "INSERT INTO child VALUES (1, 10);",
      "INSERT INTO parent VALUES (10);",
    ].join("\n");
    const ok = await importSql(target, file);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.data, { statements: 5, skipped: 0, changes: 2 });
    // A row left pointing at nothing fails the whole import at its end.
    const dangling = await importSql(
      target,
      "INSERT INTO parent VALUES (11); INSERT INTO child VALUES (2, 99);",
    );
    assert.equal(dangling.status, 400);
    assert.match(dangling.body.error, /FOREIGN KEY constraint failed: row 2 of "child"/);
    assert.deepEqual(await query(target, "SELECT id FROM parent ORDER BY id"), [{ id: 10 }]);
  });

  it("refuses what would break its one transaction, and what D1 refuses", async () => {
    const target = await newProject("refusals");
    for (const [sql, pattern] of [
      ["CREATE TABLE t (x); ROLLBACK;", /^Statement 2 \(ROLLBACK\) failed: ROLLBACK cannot run/],
      ["SAVEPOINT a;", /^Statement 1 \(SAVEPOINT a\) failed: SAVEPOINT cannot run/],
      ["ATTACH 'x.db' AS x;", /not authorized/],
      ["PRAGMA writable_schema = ON;", /not authorized/],
      ["CREATE TABLE t (x); INSERT INTO t VALUES (?);", /Statement 2 .* binds no parameters/],
      ["-- nothing but a comment\n", /^The SQL file holds no statements; nothing was imported$/],
    ] as const) {
      const res = await importSql(target, sql);
      assert.equal(res.status, 400, sql);
      assert.match(res.body.error, pattern);
    }
    assert.deepEqual(await query(target, "SELECT name FROM sqlite_schema"), []);
  });

  it("takes only SQL text: another content type, another charset or non-UTF-8 is a 400", async () => {
    const json = await importSql(server.key, '{"sql": "SELECT 1"}', "application/json");
    assert.equal(json.status, 400);
    assert.equal(
      json.body.error,
      'An import is SQL text sent with Content-Type: application/sql; this request\'s body is "application/json"',
    );
    const plain = await importSql(server.key, "SELECT 1", "text/plain");
    assert.equal(plain.status, 400);
    assert.match(plain.body.error, /Content-Type: application\/sql/);
    const latin = await importSql(server.key, "SELECT 1", "application/sql; charset=latin1");
    assert.equal(latin.status, 400);
    assert.equal(latin.body.error, "An import is UTF-8 text, not charset=latin1");
    const bytes = await importSql(server.key, Buffer.from([0x53, 0xff, 0x3b]));
    assert.equal(bytes.status, 400);
    assert.equal(bytes.body.error, "The SQL file is not UTF-8 text");
  });

  it("a file over 100 MiB is a 413 before anything runs", async () => {
    const res = await importSql(server.key, Buffer.alloc(100 * 1024 * 1024 + 1, 0x20));
    assert.equal(res.status, 413);
    assert.match(res.body.error, /larger than 100 MiB/);
  });
});

describe("ProjectDatabase export and import", () => {
  it("splits a file of several MiB right wherever its windows end", () => {
    const db = new ProjectDatabase(path.join(tmp, "windows.sqlite"));
    try {
      const lines = [
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);",
        "CREATE TABLE log (n INTEGER);",
        "CREATE TRIGGER logged AFTER INSERT ON t BEGIN INSERT INTO log VALUES (NEW.id); INSERT INTO log VALUES (-NEW.id); END;",
      ];
      // Statements with `;`, quotes and comments inside, long enough to cross 1 MiB windows.
      for (let i = 1; i <= 30_000; i++) {
        const body = `row ${i}; 'quoted' -- not a comment /* nor this */ ${"x".repeat(i % 97)}`;
        lines.push(`/* ${i}; */ INSERT INTO t VALUES (${i}, '${body.replace(/'/g, "''")}'); -- ;`);
      }
      const sql = lines.join("\n");
      assert.ok(sql.length > 3 * 1024 * 1024);
      const result = db.importSql(sql);
      assert.equal(result.failed, undefined, JSON.stringify(result.failed));
      assert.equal(result.statements, 30_003);
      const counts = db.query([
        { sql: "SELECT (SELECT count(*) FROM t) AS t, (SELECT count(*) FROM log) AS log" },
      ]);
      assert.deepEqual(counts[0].rows, [[30_000, 60_000]]);
      const [row] = db.query([{ sql: "SELECT body FROM t WHERE id = 29999" }])[0].rows;
      const expected = `row 29999; 'quoted' -- not a comment /* nor this */ ${"x".repeat(29999 % 97)}`;
      assert.equal(row[0], expected);
    } finally {
      db.close();
    }
  });

  it("an export past its limit fails with a sentence saying so", () => {
    const db = new ProjectDatabase(path.join(tmp, "limit.sqlite"));
    try {
      db.query([{ sql: "CREATE TABLE t (x TEXT)" }]);
      db.query([{ sql: "INSERT INTO t VALUES (?)", params: ["y".repeat(2000)] }]);
      assert.match(db.exportSql(100_000).sql, /^INSERT INTO "t" \(rowid,"x"\) VALUES\(1,'y+'\);$/m);
      assert.throws(
        () => db.exportSql(1000),
        /^Error: The database's export is larger than 1000 bytes, the most one export holds/,
      );
    } finally {
      db.close();
    }
  });

  it("refuses to export a virtual table, as D1 does", () => {
    const db = new ProjectDatabase(path.join(tmp, "virtual.sqlite"));
    try {
      db.query([{ sql: "CREATE VIRTUAL TABLE docs USING fts5(body)" }]);
      assert.throws(() => db.exportSql(1_000_000), /virtual table, "docs"/);
    } finally {
      db.close();
    }
  });
});
