import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, it } from "node:test";
import { Miniflare } from "miniflare";
import crypto from "node:crypto";
import os from "node:os";
import path from "node:path";
import { deployFunction, eventually, startServer, type TestServer } from "../helpers/server.js";
import { createTestDatabase, dropTestDatabases } from "../helpers/postgres.js";

// env.DB side by side with Miniflare (the local reference for D1): each suite is one handler
// run under both, in a fresh database each, and every case's output must be equal once the
// fields that legitimately differ are removed (see `normalize`).

/** Wraps a suite body: `t(name, fn)` records fn's result, or its error's message and cause. */
function handlerOf(body: string): string {
  return String.raw`async function handler(request, env) {
  const out = {};
  const t = async (name, fn) => {
    try {
      out[name] = await fn();
    } catch (e) {
      out[name] = { error: String(e && e.message), name: e && e.name, cause: e && e.cause ? String(e.cause.message) : null };
    }
  };
  const db = env.DB;
${body}
  return Response.json(out);
}`;
}

/** Statements that would show the database file's path; D1 refuses them all. */
const pathProbes = [
  "SELECT * FROM pragma_database_list",
  "SELECT file FROM pragma_database_list()",
  "PRAGMA database_list",
  "PRAGMA main.database_list",
  'SELECT * FROM main."PRAGMA_DATABASE_LIST"',
  "SELECT * FROM 'pragma_database_list'",
  "SELECT * FROM (SELECT 1), 'pragma_database_list'",
  "WITH x AS (SELECT * FROM pragma_database_list) SELECT * FROM x",
  "CREATE VIEW paths AS SELECT * FROM pragma_database_list",
];

const statements = String.raw`
  await t("create", () => db.prepare("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, data BLOB, flag INTEGER)").run());
  await t("bind positional, Uint8Array, boolean", () => db.prepare("INSERT INTO items (name, price, data, flag) VALUES (?, ?, ?, ?)").bind("apple", 1.25, new Uint8Array([1, 2, 255]), true).run());
  await t("bind numbered, ArrayBuffer, false", () => db.prepare("INSERT INTO items (name, price, data, flag) VALUES (?2, ?1, ?3, ?4)").bind(2, "pear", new Uint8Array([0, 7]).buffer, false).run());
  await t("bind named", () => db.prepare("INSERT INTO items (name, price) VALUES (:name, :price)").bind("plum", 3).run());
  await t("bind array of bytes, null", () => db.prepare("INSERT INTO items (name, price, data, flag) VALUES (?, ?, ?, ?)").bind("fig", 0, [9, 8, 7], null).run());
  await t("bind DataView, Int8Array, empty blob", async () => [
    await db.prepare("INSERT INTO items (name, data) VALUES (?, ?)").bind("view", new DataView(new Uint8Array([4, 5, 6]).buffer)).run(),
    await db.prepare("INSERT INTO items (name, data) VALUES (?, ?)").bind("signed", new Int8Array([-1, 5])).run(),
    await db.prepare("INSERT INTO items (name, data) VALUES (?, ?)").bind("empty", new ArrayBuffer(0)).run(),
  ]);
  await t("all", () => db.prepare("SELECT * FROM items ORDER BY id").all());
  await t("first", () => db.prepare("SELECT * FROM items ORDER BY id").first());
  await t("first(column)", () => db.prepare("SELECT * FROM items ORDER BY id").first("name"));
  await t("first(column) null value", () => db.prepare("SELECT data FROM items WHERE name = 'plum'").first("data"));
  await t("first on no rows", () => db.prepare("SELECT * FROM items WHERE 0").first());
  await t("first(column) on no rows", () => db.prepare("SELECT * FROM items WHERE 0").first("name"));
  await t("raw", () => db.prepare("SELECT id, name, data FROM items ORDER BY id").raw());
  await t("raw columnNames", () => db.prepare("SELECT id, name FROM items ORDER BY id").raw({ columnNames: true }));
  await t("raw columnNames on no rows", () => db.prepare("SELECT id, name FROM items WHERE 0").raw({ columnNames: true }));
  await t("raw columnNames false", () => db.prepare("SELECT id FROM items ORDER BY id").raw({ columnNames: false }));
  await t("run on a select", () => db.prepare("SELECT name FROM items WHERE id = ?").bind(1).run());
  await t("value types", () => db.prepare("SELECT typeof(?) a, typeof(?) b, typeof(?) c, typeof(?) d, typeof(?) e, ? AS big").bind(1, 1.5, "s", [1], null, 2 ** 60).all());
  await t("large integer result", () => db.prepare("SELECT 9007199254740993 AS big, -0.0 AS negzero, 1e308 * 10 AS inf").all());
  await t("gap in numbered parameters", () => db.prepare("SELECT ?3 AS c").bind(1, 2, 3).all());
  await t("numbered then anonymous", () => db.prepare("SELECT ?2 AS a, ? AS b").bind(1, 2, 3).all());
  await t("repeated named", () => db.prepare("SELECT :a AS x, :a AS y, ? AS z").bind(1, 2).all());
  await t("unnamed column names", () => db.prepare("SELECT ?, ?1, 1 + 1, 'x'").bind(5).all());
  await t("statement objects", async () => {
    const s = db.prepare("SELECT ? AS v");
    const one = s.bind(1);
    const two = s.bind(2);
    return { statement: one.statement, params: [one.params, two.params], same: one === s, values: [await one.first("v"), await two.first("v")] };
  });
  await t("update", () => db.prepare("UPDATE items SET price = price * 2 WHERE price > ?").bind(1).run());
  await t("delete", () => db.prepare("DELETE FROM items WHERE name = ?").bind("view").run());
  await t("insert returning", () => db.prepare("INSERT INTO items (name) VALUES ('kiwi') RETURNING id, name").all());
  await t("duplicate column names", async () => [await db.prepare("SELECT 1 AS a, 2 AS a").all(), await db.prepare("SELECT 1 AS a, 2 AS a").raw({ columnNames: true })]);
  await t("several statements answer the last", () => db.prepare("SELECT 1 AS a; SELECT 2 AS b").all());
  await t("several statements with a write", () => db.prepare("INSERT INTO items (name) VALUES ('m1'); INSERT INTO items (name) VALUES ('m2'); SELECT count(*) AS n FROM items").all());
  await t("only the last statement has parameters", () => db.prepare("INSERT INTO items (name) VALUES ('m3'); SELECT name FROM items WHERE name = ?").bind("m3").all());
  await t("trailing semicolon and leading comment", async () => [await db.prepare("SELECT 1 AS x;").all(), await db.prepare("-- note\nSELECT 1 AS x").all(), await db.prepare("; SELECT 1 AS x").all()]);
  await t("create index", () => db.prepare("CREATE INDEX items_name ON items (name)").run());
  await t("trigger", async () => [
    await db.prepare("CREATE TABLE audit (item INTEGER, what TEXT)").run(),
    await db.prepare("CREATE TRIGGER items_audit AFTER INSERT ON items BEGIN INSERT INTO audit VALUES (new.id, CASE WHEN new.price IS NULL THEN 'free' ELSE 'paid' END); END").run(),
    await db.prepare("INSERT INTO items (name) VALUES ('t1')").run(),
    await db.prepare("SELECT * FROM audit").all(),
  ]);
  await t("allowed pragmas", async () => [
    await db.prepare("PRAGMA table_info(items)").all(),
    await db.prepare("PRAGMA foreign_keys").all(),
    await db.prepare("PRAGMA index_list(items)").all(),
    await db.prepare("PRAGMA defer_foreign_keys = on").run(),
    await db.prepare("PRAGMA quick_check").all(),
  ]);
  await t("recursive CTE", () => db.prepare("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT sum(x) AS s FROM c").first("s"));
  await t("json functions", () => db.prepare("SELECT json_object('a', 1, 'b', json_array(1, 2)) AS j, json_extract('{\"x\": {\"y\": 3}}', '$.x.y') AS y").first());
  await t("NaN binds as null", () => db.prepare("SELECT ? AS x").bind(NaN).first("x"));
  await t("prototypes", () => ({
    db: Object.getOwnPropertyNames(Object.getPrototypeOf(db)),
    statement: Object.getOwnPropertyNames(Object.getPrototypeOf(db.prepare("SELECT 1"))),
  }));
`;

const errors = String.raw`
  await db.prepare("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, n INTEGER CHECK (n >= 0))").run();
  await db.prepare("CREATE TABLE child (pid INTEGER REFERENCES parent(id))").run();
  await db.prepare("INSERT INTO parent VALUES (1, 'one', 1)").run();
  await t("no such table", () => db.prepare("SELECT * FROM nope").all());
  await t("syntax error at the start", () => db.prepare("SELEC 1").all());
  await t("syntax error later", () => db.prepare("SELECT 1 1").all());
  await t("syntax error after a repeated token", () => db.prepare("SELECT a1 FROM parent WHERE 1 = 1 1").all());
  await t("unterminated string", () => db.prepare("SELECT 'abc").all());
  await t("incomplete input", () => db.prepare("SELECT * FROM parent WHERE").all());
  await t("no such column", () => db.prepare("SELECT name, nocol FROM parent").all());
  await t("no such column, qualified", () => db.prepare("SELECT parent.zz FROM parent").all());
  await t("no such column in UPDATE SET", () => db.prepare("UPDATE parent SET zz = 1").run());
  await t("no such column in the second statement", () => db.prepare("SELECT 1; SELECT nocol").all());
  await t("offsets count from each statement's first non-blank character", async () => {
    const out = [];
    for (const sql of ["  SELECT nocol", "SELECT 1;   -- c\n  SELECT nocol", "SELECT 1;/* x */ SELECT nocol", "SELECT 1;  SELEC 1", "SELECT 1;  SELECT ?0"]) {
      try { await db.prepare(sql).all(); out.push("ok"); } catch (e) { out.push(e.message); }
    }
    return out;
  });
  await t("no such function", () => db.prepare("SELECT nofunc(1)").all());
  await t("wrong number of arguments", () => db.prepare("SELECT abs(1, 2)").all());
  await t("misuse of aggregate", () => db.prepare("SELECT sum(n) FROM parent WHERE sum(n) > 1").all());
  await t("table already exists", () => db.prepare("CREATE TABLE parent (a)").run());
  await t("unique constraint", () => db.prepare("INSERT INTO parent (name, n) VALUES ('one', 2)").run());
  await t("primary key constraint", () => db.prepare("INSERT INTO parent (id, name) VALUES (1, 'x')").run());
  await t("not null constraint", () => db.prepare("INSERT INTO parent (name) VALUES (NULL)").run());
  await t("check constraint", () => db.prepare("INSERT INTO parent (name, n) VALUES ('neg', -1)").run());
  await t("foreign key constraint", () => db.prepare("INSERT INTO child VALUES (99)").run());
  await t("too many bindings", () => db.prepare("SELECT ?").bind(1, 2).all());
  await t("too few bindings", () => db.prepare("SELECT ?, ?").bind(1).all());
  await t("parameters before the last statement", () => db.prepare("SELECT ? AS a; SELECT ? AS b").bind(1, 2).all());
  await t("parameter number out of range", () => db.prepare("SELECT ?0").all());
  await t("too many parameters", () => db.prepare("SELECT " + Array.from({ length: 101 }, () => "?").join(", ")).bind(...Array.from({ length: 101 }, (_, i) => i)).all());
  await t("empty statement", () => db.prepare("").all());
  await t("comment only", () => db.prepare("-- nothing").all());
  await t("trailing comment after a semicolon", () => db.prepare("SELECT 1; -- note").all());
  await t("double semicolon", () => db.prepare("SELECT 1;;").all());
  await t("bind undefined", () => db.prepare("SELECT ?").bind(undefined));
  await t("bind object", () => db.prepare("SELECT ?").bind({ a: 1 }));
  await t("bind bigint", () => db.prepare("SELECT ?").bind(10n));
  await t("bind function", () => db.prepare("SELECT ?").bind(() => 1));
  await t("bind array that is not bytes", () => db.prepare("SELECT ?").bind([1, 300]));
  await t("first(missing column)", () => db.prepare("SELECT 1 AS a").first("missing"));
  await t("BEGIN", () => db.prepare("BEGIN").run());
  await t("COMMIT", () => db.prepare("COMMIT").run());
  await t("SAVEPOINT", () => db.prepare("SAVEPOINT s1").run());
  await t("ROLLBACK", () => db.prepare("ROLLBACK").run());
  await t("ATTACH", () => db.prepare("ATTACH DATABASE 'other.db' AS other").run());
  await t("PRAGMA journal_mode", () => db.prepare("PRAGMA journal_mode = DELETE").run());
  await t("PRAGMA user_version", () => db.prepare("PRAGMA user_version").all());
  await t("PRAGMA foreign_keys with a non-boolean", () => db.prepare("PRAGMA foreign_keys = 2").run());
  await t("PRAGMA table_info without a table", () => db.prepare("PRAGMA table_info").all());
  await t("reserved _cf_ name", () => db.prepare("CREATE TABLE _cf_mine (a)").run());
  await t("reserved sqlite_ name", () => db.prepare("CREATE TABLE sqlite_mine (a)").run());
  await t("VACUUM", () => db.prepare("VACUUM").run());
  await t("load_extension", () => db.prepare("SELECT load_extension('x')").all());
  await t("blob too big", () => db.prepare("SELECT zeroblob(2000000000)").all());
  await t("dump", () => db.dump());
  await t("nothing was written by the failures", () => db.prepare("SELECT (SELECT count(*) FROM parent) AS parents, (SELECT count(*) FROM child) AS children").first());
`;

const batchExecSession = String.raw`
  await t("batch", () => db.batch([
    db.prepare("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT UNIQUE)"),
    db.prepare("INSERT INTO notes (body) VALUES (?)").bind("a"),
    db.prepare("INSERT INTO notes (body) VALUES (?1)").bind("b"),
    db.prepare("SELECT * FROM notes ORDER BY id"),
  ]));
  await t("batch failing midway", () => db.batch([
    db.prepare("INSERT INTO notes (body) VALUES ('c')"),
    db.prepare("INSERT INTO notes (body) VALUES ('a')"),
    db.prepare("INSERT INTO notes (body) VALUES ('d')"),
  ]));
  await t("batch rolled back", () => db.prepare("SELECT group_concat(body) AS bodies FROM notes").first("bodies"));
  await t("batch with a bad statement", () => db.batch([db.prepare("INSERT INTO notes (body) VALUES ('e')"), db.prepare("SELECT * FROM nope")]));
  await t("batch of none", () => db.batch([]));
  await t("batch skips empty statements", () => db.batch([db.prepare(""), db.prepare("SELECT 1 AS one")]));
  await t("exec", () => db.exec("INSERT INTO notes (body) VALUES ('x1');\nINSERT INTO notes (body) VALUES ('x2')\n\nUPDATE notes SET body = body || '!' WHERE body LIKE 'x%'"));
  await t("exec result", () => db.prepare("SELECT group_concat(body) AS bodies FROM notes").first("bodies"));
  await t("exec two statements on one line", () => db.exec("SELECT 1; SELECT 2"));
  await t("exec empty", () => db.exec(""));
  await t("exec blank", () => db.exec("   \n  "));
  await t("exec error on a later line", () => db.exec("INSERT INTO notes (body) VALUES ('y1')\nBOGUS STATEMENT"));
  await t("exec error rolled back", () => db.prepare("SELECT count(*) AS n FROM notes WHERE body = 'y1'").first("n"));
  await t("exec constraint error", () => db.exec("INSERT INTO notes (body) VALUES ('a')"));
  await t("exec comment line", () => db.exec("SELECT 1\n-- a comment"));
  await t("exec indented comment line", () => db.exec("SELECT 1\n   -- a comment"));
  await t("session", async () => {
    const s = db.withSession();
    const before = s.getBookmark();
    const first = await s.prepare("SELECT count(*) AS n FROM notes").first();
    const b1 = s.getBookmark();
    await s.prepare("INSERT INTO notes (body) VALUES ('s1')").run();
    const b2 = s.getBookmark();
    const batch = await s.batch([s.prepare("SELECT body FROM notes WHERE body = ?").bind("s1")]);
    return { before, first, b1, b2, grew: b2 >= b1, batch, exec: typeof s.exec, withSession: typeof s.withSession, dump: typeof s.dump };
  });
  await t("session from a bookmark", async () => {
    const s1 = db.withSession("first-primary");
    await s1.prepare("SELECT 1").run();
    const bookmark = s1.getBookmark();
    const s2 = db.withSession(bookmark);
    const given = s2.getBookmark() === bookmark;
    const row = await s2.prepare("SELECT body FROM notes WHERE body = 's1'").first();
    return { given, row, later: s2.getBookmark() >= bookmark };
  });
  await t("session with a blank constraint", () => db.withSession("   ").getBookmark());
  await t("session with a number", () => db.withSession(5));
  await t("primary has no bookmark", () => typeof db.getBookmark);
  await t("session prototype", () => Object.getOwnPropertyNames(Object.getPrototypeOf(db.withSession())).filter((n) => !n.startsWith("_")));
`;

const counters = String.raw`
  const m = async (sql, ...params) => {
    const { meta, results } = await db.prepare(sql).bind(...params).all();
    return { read: meta.rows_read, written: meta.rows_written, rows: results.length };
  };
  const counts = (r) => ({ read: r.meta.rows_read, written: r.meta.rows_written });
  await t("SELECT 1", () => m("SELECT 1"));
  await t("SELECT with bound values", () => m("SELECT ? + ? AS s", 1, 2));
  await t("CREATE TABLE", () => m("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, v INTEGER)"));
  await t("CREATE TABLE with a UNIQUE column", () => m("CREATE TABLE p (id INTEGER PRIMARY KEY, tag TEXT UNIQUE)"));
  await t("CREATE TABLE IF NOT EXISTS, existing", () => m("CREATE TABLE IF NOT EXISTS t (x)"));
  await t("SELECT * FROM an empty table", () => m("SELECT * FROM t"));
  await t("count(*) of an empty table", () => m("SELECT count(*) AS n FROM t"));
  await t("ORDER BY on an empty table", () => m("SELECT * FROM t ORDER BY v"));
  await t("INSERT", () => m("INSERT INTO t (name, v) VALUES ('a', 1)"));
  await t("INSERT several rows", () => m("INSERT INTO t (name, v) VALUES (?, ?), (?, ?), (?, ?)", "b", 2, "c", 3, "d", 4));
  await t("INSERT with its rowid", () => m("INSERT INTO t (id, name, v) VALUES (10, 'e', 5)"));
  await t("INSERT ... RETURNING", () => m("INSERT INTO t (name, v) VALUES ('f', 6) RETURNING id, name"));
  await t("INSERT into a UNIQUE column", () => m("INSERT INTO p VALUES (1, 'x'), (2, 'y'), (3, 'a')"));
  await t("SELECT * FROM a table", () => m("SELECT * FROM t"));
  await t("WHERE on an unindexed column", () => m("SELECT * FROM t WHERE v = 3"));
  await t("WHERE rowid =", () => m("SELECT * FROM t WHERE id = ?", 10));
  await t("WHERE rowid = (none)", () => m("SELECT * FROM t WHERE id = 999"));
  await t("rowid range", () => m("SELECT * FROM t WHERE id > 2"));
  await t("rowid range with an end", () => m("SELECT * FROM t WHERE id BETWEEN 2 AND 4"));
  await t("rowid range below", () => m("SELECT * FROM t WHERE id < 3"));
  await t("count(*)", () => m("SELECT count(*) AS n FROM t"));
  await t("sum()", () => m("SELECT sum(v) AS s FROM t"));
  await t("max(rowid)", () => m("SELECT max(id) AS m FROM t"));
  await t("CREATE INDEX", () => m("CREATE INDEX t_name ON t (name)"));
  await t("CREATE INDEX on an empty table", () => m("CREATE INDEX p_id ON p (id)"));
  await t("WHERE on an indexed column", () => m("SELECT * FROM t WHERE name = 'c'"));
  await t("WHERE on an indexed column, its last entry", () => m("SELECT * FROM t WHERE name = ?", "f"));
  await t("WHERE on an indexed column, no match", () => m("SELECT * FROM t WHERE name = 'zz'"));
  await t("WHERE on an indexed column, a range", () => m("SELECT * FROM t WHERE name > 'b'"));
  await t("WHERE on an indexed column, a closed range", () => m("SELECT * FROM t WHERE name BETWEEN ? AND ?", "b", "c"));
  await t("WHERE on an indexed column, an empty range", () => m("SELECT * FROM t WHERE name > 'zz'"));
  await t("WHERE on a UNIQUE column", () => m("SELECT * FROM p WHERE tag = 'y'"));
  await t("WHERE on a UNIQUE column, no match", () => m("SELECT * FROM p WHERE tag = 'zz'"));
  await t("count(*) over an index range", () => m("SELECT count(*) AS n FROM t WHERE name >= 'c'"));
  await t("ORDER BY", () => m("SELECT * FROM t ORDER BY v"));
  await t("ORDER BY an index", () => m("SELECT name FROM t ORDER BY name"));
  await t("ORDER BY ... LIMIT", () => m("SELECT * FROM t ORDER BY v DESC LIMIT 2"));
  await t("LIMIT", () => m("SELECT * FROM t LIMIT 2"));
  await t("LIMIT ? OFFSET ?", () => m("SELECT * FROM t LIMIT ? OFFSET ?", 2, 3));
  await t("LIMIT with no match", () => m("SELECT * FROM t WHERE v = 99 LIMIT 1"));
  await t("GROUP BY", () => m("SELECT v % 2 AS odd, count(*) AS n FROM t GROUP BY odd"));
  await t("DISTINCT", () => m("SELECT DISTINCT v FROM t"));
  await t("IN list on the rowid", () => m("SELECT * FROM t WHERE id IN (1, 3, 5)"));
  await t("IN subquery", () => m("SELECT * FROM t WHERE v IN (SELECT id FROM p)"));
  await t("JOIN on the rowid", () => m("SELECT t.name, p.tag FROM t JOIN p ON p.id = t.v"));
  await t("scalar subqueries", () => m("SELECT (SELECT count(*) FROM t) AS a, (SELECT count(*) FROM p) AS b"));
  await t("UNION ALL", () => m("SELECT name FROM t UNION ALL SELECT tag FROM p"));
  await t("a view", async () => [await m("CREATE VIEW big AS SELECT * FROM t WHERE v > 3"), await m("SELECT * FROM big")]);
  await t("json_each", () => m("SELECT value FROM json_each('[1, 2, 3]')"));
  await t("UPDATE by rowid", () => m("UPDATE t SET v = v + 1 WHERE id = 1"));
  await t("UPDATE of an indexed column", () => m("UPDATE t SET name = 'aa' WHERE id = 1"));
  await t("UPDATE with an unindexed WHERE", () => m("UPDATE t SET v = v + 1 WHERE v > 4"));
  await t("UPDATE through an index", () => m("UPDATE t SET v = 0 WHERE name = ?", "c"));
  await t("UPDATE of every row", () => m("UPDATE t SET v = v * 2"));
  await t("UPDATE ... RETURNING", () => m("UPDATE p SET tag = 'w' WHERE id = 2 RETURNING *"));
  await t("UPDATE matching nothing", () => m("UPDATE t SET v = 1 WHERE name = 'nothing'"));
  await t("upsert, inserting", () => m("INSERT INTO p VALUES (4, 'q') ON CONFLICT (id) DO UPDATE SET tag = excluded.tag"));
  await t("upsert, updating", () => m("INSERT INTO p VALUES (4, 'qq') ON CONFLICT (id) DO UPDATE SET tag = excluded.tag"));
  await t("INSERT OR IGNORE of a duplicate", () => m("INSERT OR IGNORE INTO t (id, name) VALUES (10, 'dup')"));
  await t("REPLACE", () => m("REPLACE INTO t (id, name, v) VALUES (10, 'e2', 5)"));
  await t("INSERT ... SELECT", () => m("INSERT INTO t (name, v) SELECT tag, id FROM p"));
  await t("DELETE by rowid", () => m("DELETE FROM t WHERE id = 2"));
  await t("DELETE through an index", () => m("DELETE FROM t WHERE name = 'd'"));
  await t("DELETE with an unindexed WHERE", () => m("DELETE FROM t WHERE v = 12"));
  await t("DELETE ... RETURNING", () => m("DELETE FROM t WHERE v > 10 RETURNING name"));
  await t("DELETE matching nothing", () => m("DELETE FROM t WHERE name = 'nothing'"));
  await t("a trigger", async () => [
    await m("CREATE TABLE audit (what TEXT)"),
    await m("CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN INSERT INTO audit VALUES (new.name); END"),
    await m("INSERT INTO t (name, v) VALUES ('g', 7)"),
  ]);
  await t("a foreign key", async () => [
    await m("CREATE TABLE c (pid INTEGER REFERENCES p(id), note TEXT)"),
    await m("INSERT INTO c VALUES (1, 'n1'), (3, 'n2')"),
  ]);
  await t("several statements report the last", async () => [
    await m("SELECT * FROM t; SELECT 1"),
    await m("INSERT INTO t (name) VALUES ('m1'); SELECT count(*) AS n FROM t"),
    await m("SELECT 1; INSERT INTO t (name) VALUES ('m2')"),
  ]);
  await t("batch", async () =>
    (await db.batch([
      db.prepare("SELECT 1"),
      db.prepare("INSERT INTO t (name) VALUES (?)").bind("b1"),
      db.prepare("SELECT * FROM t WHERE id = ?").bind(1),
      db.prepare("SELECT * FROM t"),
    ])).map(counts));
  await t("exec", async () => {
    const out = await db.exec("INSERT INTO t (name) VALUES ('x1')\nUPDATE t SET v = 1 WHERE name = 'x1'");
    return [out.count, await m("SELECT * FROM t WHERE name = 'x1'")];
  });
  await t("pragmas and pragma functions", async () => [await m("PRAGMA table_info(t)"), await m("PRAGMA foreign_keys"), await m("SELECT * FROM pragma_index_list('t')")]);
  await t("EXPLAIN", () => m("EXPLAIN SELECT * FROM t"));
  await t("DELETE of every row", () => m("DELETE FROM t"));
`;

const bookmarkShape = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;
/**
 * Fields that legitimately differ, removed before comparing:
 * - meta.duration and exec's duration: timings.
 * - meta.size_after: the file size; Miniflare's database lives in a Durable Object's storage
 *   with its own internal table (`_cf_METADATA`), so page counts differ.
 * - meta.served_by: names the server ("miniflare.db" there, "workerbase.db" here).
 * Bookmarks become "<bookmark>": their value is opaque and only has to grow.
 * meta.rows_read and rows_written are compared (src/db/meter.ts works out what workerd's
 * SQLite counts), except in the cases below, which docs/decisions.md explains.
 */
const metaOnly = ["duration", "size_after", "served_by"];
/** Cases (`suite: case`) whose rows_read/rows_written differ from D1's, and why. */
const countersDiffer: Record<string, string> = {
  "statements: allowed pragmas": "PRAGMA quick_check also reads D1's internal table",
};

function normalize(value: unknown, counters = true): unknown {
  if (Array.isArray(value)) return value.map((v) => normalize(v, counters));
  if (value && typeof value === "object") {
    const dropped = counters ? metaOnly : [...metaOnly, "rows_read", "rows_written"];
    const entries = Object.entries(value).filter(
      ([k]) =>
        !(("served_by" in value && dropped.includes(k)) || ("count" in value && k === "duration")),
    );
    return Object.fromEntries(entries.map(([k, v]) => [k, normalize(v, counters)]));
  }
  if (typeof value === "string" && bookmarkShape.test(value)) return "<bookmark>";
  return value;
}

/** Every meta object in our answers has the removed fields, with sensible values. */
function checkOurMeta(value: unknown, where: string): void {
  if (Array.isArray(value)) return value.forEach((v) => checkOurMeta(v, where));
  if (!value || typeof value !== "object") return;
  if ("served_by" in value) {
    const meta = value as Record<string, unknown>;
    assert.equal(meta.served_by, "workerbase.db", where);
    assert.ok(typeof meta.duration === "number" && meta.duration >= 0, where);
    assert.ok(Number.isInteger(meta.size_after) && (meta.size_after as number) > 0, where);
    for (const k of ["rows_read", "rows_written", "changes"])
      assert.ok(Number.isInteger(meta[k]) && (meta[k] as number) >= 0, `${where}: ${k}`);
    return;
  }
  for (const v of Object.values(value)) checkOurMeta(v, where);
}

let server: TestServer;

async function newProject(name: string): Promise<string> {
  const res = await fetch(`${server.url}/admin/v1/projects`, {
    method: "POST",
    headers: { "x-admin-key": server.adminKey, "content-type": "application/json" },
    body: JSON.stringify({ project: { name } }),
  });
  assert.equal(res.status, 201);
  return ((await res.json()) as any).data.api_key;
}

async function invoke(fnId: string, key: string, path = ""): Promise<Response> {
  return fetch(`${server.api}/functions/${fnId}/invoke${path}`, { headers: { "x-api-key": key } });
}

async function underMiniflare(code: string): Promise<Record<string, unknown>> {
  const mf = new Miniflare({
    modules: true,
    script: `${code}\nexport default { fetch: (r, e) => handler(r, e) }`,
    d1Databases: ["DB"],
    compatibilityDate: "2025-11-17",
  });
  try {
    const res = await mf.dispatchFetch("http://localhost/");
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as Record<string, unknown>;
  } finally {
    await mf.dispose();
  }
}

async function underWorkerbase(name: string, code: string): Promise<Record<string, unknown>> {
  const key = await newProject(name);
  const fn = await deployFunction(server, { name, code }, key);
  assert.equal(fn.status, "deployed", fn.deploy_error);
  const res = await invoke(fn.id, key);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Record<string, unknown>;
}

/**
 * Two hosts of a cluster (one PostgreSQL store, one shared D1 folder): the owner takes the
 * project's database first, then the function runs on the other host, whose every statement
 * is forwarded to the owner.
 */
let owner: TestServer;
let forwarder: TestServer;

async function throughForwardingHost(name: string, code: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${owner.url}/admin/v1/projects`, {
    method: "POST",
    headers: { "x-admin-key": owner.adminKey, "content-type": "application/json" },
    body: JSON.stringify({ project: { name } }),
  });
  assert.equal(res.status, 201);
  const key = ((await res.json()) as any).data.api_key;
  const claimed = await owner.call(
    "POST",
    "/database/query",
    { sql: "select 1" },
    {
      "x-api-key": key,
    },
  );
  assert.equal(claimed.status, 200);
  const fn = await deployFunction(forwarder, { name, code }, key);
  assert.equal(fn.status, "deployed", fn.deploy_error);
  const answer = await fetch(`${forwarder.api}/functions/${fn.id}/invoke`, {
    headers: { "x-api-key": key },
  });
  assert.equal(answer.status, 200, await answer.clone().text());
  const { databases } = await forwarder.health();
  assert.equal(databases.owned, 0, "the forwarding host opened no project database");
  return (await answer.json()) as Record<string, unknown>;
}

async function sideBySide(name: string, body: string): Promise<void> {
  const code = handlerOf(body);
  const [ours, forwarded, theirs] = await Promise.all([
    underWorkerbase(name, code),
    throughForwardingHost(name, code),
    underMiniflare(code),
  ]);
  for (const [how, answer] of [
    ["one host", ours],
    ["a forwarding host", forwarded],
  ] as const) {
    checkOurMeta(answer, `${name} (${how})`);
    assert.deepEqual(Object.keys(answer), Object.keys(theirs));
    for (const key of Object.keys(theirs)) {
      const counters = !(`${name}: ${key}` in countersDiffer);
      assert.deepEqual(
        normalize(answer[key], counters),
        normalize(theirs[key], counters),
        `${name}: ${key} (${how})`,
      );
    }
  }
}

const sharedD1 = fs.mkdtempSync(path.join(os.tmpdir(), "wb-d1-fwd-"));

before(async () => {
  const database = await createTestDatabase();
  const env = {
    DATABASE_URL: database.url,
    WORKERBASE_MASTER_KEY: crypto.randomBytes(32).toString("base64"),
    WORKERBASE_ADMIN_KEY: "admin_" + crypto.randomBytes(12).toString("hex"),
    WORKERBASE_D1_DIR: sharedD1,
  };
  [server, owner, forwarder] = await Promise.all([
    startServer(),
    startServer({ env }),
    startServer({ env }),
  ]);
});
after(async () => {
  await Promise.all([server.stop(), owner.stop(), forwarder.stop()]);
  await dropTestDatabases();
  fs.rmSync(sharedD1, { recursive: true, force: true });
});

describe("env.DB through a forwarding host", () => {
  it("a runaway statement is killed on the owner, and the caller hears what one host says", async () => {
    const code = `async function handler(request, env) {
  try {
    await env.DB.prepare("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS n FROM c").first("n");
    return Response.json({ finished: true });
  } catch (e) {
    return Response.json({ error: String(e.message) });
  }
}`;
    const answers = [];
    for (const [host, key] of [
      [server, await newProject("runaway-one")],
      [forwarder, null],
    ] as const) {
      let apiKey = key;
      if (!apiKey) {
        const res = await fetch(`${owner.url}/admin/v1/projects`, {
          method: "POST",
          headers: { "x-admin-key": owner.adminKey, "content-type": "application/json" },
          body: JSON.stringify({ project: { name: "runaway-cluster" } }),
        });
        apiKey = ((await res.json()) as any).data.api_key as string;
        const claimed = await owner.call(
          "POST",
          "/database/query",
          { sql: "select 1" },
          {
            "x-api-key": apiKey,
          },
        );
        assert.equal(claimed.status, 200);
      }
      const fn = await deployFunction(
        host,
        { name: "runaway", code, runtime_config: { timeout: 5 } },
        apiKey,
      );
      const started = Date.now();
      const res = await fetch(`${host.api}/functions/${fn.id}/invoke`, {
        headers: { "x-api-key": apiKey },
      });
      answers.push({ status: res.status, body: await res.text(), took: Date.now() - started });
    }
    const [single, forwarded] = answers;
    const { invocation_id: _a, ...one } = JSON.parse(single!.body);
    const { invocation_id: _b, ...through } = JSON.parse(forwarded!.body);
    assert.equal(forwarded!.status, single!.status);
    assert.deepEqual(through, one);
    assert.ok(forwarded!.took < 15_000, `took ${forwarded!.took} ms`);
    // The statement was stopped where it ran: in the owner's database process.
    const stopped = await eventually(async () => {
      const { databases } = await owner.health();
      return databases.timeouts >= 1 ? databases : undefined;
    }, 10_000);
    assert.ok(stopped.owned >= 1);
    assert.equal((await forwarder.health()).databases.timeouts, 0);
  });
});

describe("env.DB side by side with Miniflare, on one host and through a forwarding host", () => {
  it("statements, binding, results and meta match", () => sideBySide("statements", statements));
  it("every error code and message matches", () => sideBySide("errors", errors));
  it("batch, exec and sessions match", () => sideBySide("batch-exec-session", batchExecSession));
  it("rows read and written match, statement by statement", () => sideBySide("counters", counters));
});

/** Runs SQL through the data API with a project's key. */
async function sql(key: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await server.call("POST", "/database/query", body, { "x-api-key": key });
  return { status: res.status, body: await res.json() };
}

/** PIDs of the server's database children. */
function dbChildren(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (ppid === server.child.pid && cmdline.includes("db/child.js")) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

describe("env.DB on Workerbase", () => {
  it("a failing batch leaves no partial write", async () => {
    const key = await newProject("rollback");
    const fn = await deployFunction(
      server,
      {
        name: "batcher",
        code: `async function handler(request, env) {
          await env.DB.exec("CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, balance INTEGER CHECK (balance >= 0))");
          await env.DB.prepare("INSERT OR REPLACE INTO accounts VALUES (1, 100), (2, 0)").run();
          let error = null;
          try {
            await env.DB.batch([
              env.DB.prepare("UPDATE accounts SET balance = balance + 150 WHERE id = 2"),
              env.DB.prepare("INSERT INTO accounts VALUES (3, 1)"),
              env.DB.prepare("UPDATE accounts SET balance = balance - 150 WHERE id = 1"),
            ]);
          } catch (e) { error = e.message; }
          const rows = await env.DB.prepare("SELECT * FROM accounts ORDER BY id").all();
          return Response.json({ error, rows: rows.results });
        }`,
      },
      key,
    );
    const res = await invoke(fn.id, key);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      error:
        "D1_ERROR: CHECK constraint failed: balance >= 0: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_CHECK)",
      rows: [
        { id: 1, balance: 100 },
        { id: 2, balance: 0 },
      ],
    });
  });

  it("a second project sees none of the first project's tables", async () => {
    const keyA = await newProject("isolated-a");
    const keyB = await newProject("isolated-b");
    assert.equal((await sql(keyA, { sql: "CREATE TABLE secret_a (v TEXT)" })).status, 200);
    assert.equal(
      (await sql(keyA, { sql: "INSERT INTO secret_a VALUES (?)", params: ["a's"] })).status,
      200,
    );
    const lister = `async function handler(request, env) {
      const { results } = await env.DB.prepare("SELECT name FROM sqlite_schema").all();
      let read = null;
      try { read = await env.DB.prepare("SELECT * FROM secret_a").all(); } catch (e) { read = e.message; }
      return Response.json({ names: results.map((r) => r.name), read });
    }`;
    const fnB = await deployFunction(server, { name: "lister", code: lister }, keyB);
    const res = await invoke(fnB.id, keyB);
    assert.deepEqual(await res.json(), {
      names: [],
      read: "D1_ERROR: no such table: secret_a: SQLITE_ERROR",
    });
    const tablesB = await server.call("GET", "/database_tables", undefined, { "x-api-key": keyB });
    assert.deepEqual(await tablesB.json(), { data: [] });
    const readB = await sql(keyB, { sql: "SELECT * FROM secret_a" });
    assert.equal(readB.status, 400);
    const tablesA = await server.call("GET", "/database_tables", undefined, { "x-api-key": keyA });
    const { data } = (await tablesA.json()) as any;
    assert.deepEqual(
      data.map((t: any) => [t.name, t.row_count, t.columns.map((c: any) => c.name)]),
      [["secret_a", 1, ["v"]]],
    );
  });

  it("100 concurrent invocations inserting rows: no error, no lost write", async () => {
    const key = await newProject("concurrent");
    assert.equal((await sql(key, { sql: "CREATE TABLE hits (n INTEGER, at TEXT)" })).status, 200);
    const fn = await deployFunction(
      server,
      {
        name: "hit",
        code: `async function handler(request, env) {
          const n = Number(new URL(request.url).searchParams.get("n"));
          await env.DB.prepare("INSERT INTO hits VALUES (?, datetime('now'))").bind(n).run();
          const { c } = await env.DB.prepare("SELECT count(*) AS c FROM hits WHERE n = ?").bind(n).first();
          return Response.json({ n, c });
        }`,
      },
      key,
    );
    const answers = await Promise.all(
      Array.from({ length: 100 }, async (_, n) => {
        const res = await invoke(fn.id, key, `?n=${n}`);
        return { status: res.status, body: await res.text() };
      }),
    );
    for (const a of answers) assert.equal(a.status, 200, a.body);
    const counted = await sql(key, {
      sql: "SELECT count(*) AS rows, count(DISTINCT n) AS distinct_n FROM hits",
    });
    assert.deepEqual(counted.body.data.results, [{ rows: 100, distinct_n: 100 }]);
  });

  it("no answer shows the database file's path: D1's PRAGMA rules hold for pragma_*", async () => {
    const key = await newProject("paths");
    const fn = await deployFunction(
      server,
      {
        name: "paths",
        code: `async function handler(request, env) {
          const out = {};
          for (const sql of ${JSON.stringify(pathProbes)}) {
            try { out[sql] = await env.DB.prepare(sql).all(); } catch (e) { out[sql] = e.message; }
          }
          return Response.json(out);
        }`,
      },
      key,
    );
    const res = await invoke(fn.id, key);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.ok(!text.includes(server.dataDir) && !text.includes(".sqlite"), text);
    const answers = JSON.parse(text);
    for (const sql of pathProbes)
      assert.equal(answers[sql], "D1_ERROR: not authorized: SQLITE_AUTH", sql);
    // D1's allowed PRAGMA functions still answer.
    const tables = await sql(key, {
      sql: "SELECT name FROM pragma_table_list WHERE schema = 'main'",
    });
    assert.equal(tables.status, 200);
    for (const probe of pathProbes) {
      const viaApi = await sql(key, { sql: probe });
      assert.deepEqual(
        viaApi,
        { status: 400, body: { error: "not authorized: SQLITE_AUTH" } },
        probe,
      );
    }
  });

  it("the raw database entrypoint takes only D1's operation: no path reaches KV", async () => {
    const key = await newProject("raw-db");
    const fn = await deployFunction(
      server,
      {
        name: "raw-db",
        code: `import { env as raw } from "cloudflare:workers";
        async function handler(request, env) {
          await env.KV.put("only-in-kv", "secret");
          // The raw entrypoint may not be in the env at all (then nothing can reach it).
          if (!raw.__WB_DB) return Response.json({ absent: true });
          const out = {};
          for (const op of ["../kv/list", "../kv/get", "query/../../kv/list", "%2E%2E/kv/list", "list", ""]) {
            try { out[op] = JSON.parse(await raw.__WB_DB.call(op, { prefix: "", key: "only-in-kv" })); } catch (e) { out[op] = { thrown: String(e) }; }
          }
          out.query = JSON.parse(await raw.__WB_DB.call("query", { queries: [{ sql: "SELECT 1 AS one" }] })).results;
          return Response.json(out);
        }`,
      },
      key,
    );
    const res = await invoke(fn.id, key);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.ok(!text.includes("only-in-kv") && !text.includes("secret"), text);
    const answers = JSON.parse(text);
    if (answers.absent) return;
    for (const op of [
      "../kv/list",
      "../kv/get",
      "query/../../kv/list",
      "%2E%2E/kv/list",
      "list",
      "",
    ])
      assert.match(answers[op].error, /^unknown database operation /, op);
    assert.deepEqual(answers.query[0].rows, [[1]]);
  });

  it("an endless query fails its invocation while other requests keep being answered", async () => {
    const keyA = await newProject("endless");
    const keyB = await newProject("bystander");
    const endless = await deployFunction(
      server,
      {
        name: "endless",
        runtime_config: { timeout: 2 },
        code: `async function handler(request, env) {
          const n = await env.DB.prepare("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS n FROM c").first("n");
          return Response.json({ n });
        }`,
      },
      keyA,
    );
    const point = `async function handler(request, env) {
      await env.DB.exec("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)");
      await env.DB.prepare("INSERT OR REPLACE INTO kv VALUES ('k', ?)").bind(new Date().toISOString()).run();
      return Response.json(await env.DB.prepare("SELECT count(*) AS n FROM kv").first());
    }`;
    const bystander = await deployFunction(server, { name: "bystander", code: point }, keyB);
    const afterwards = await deployFunction(server, { name: "afterwards", code: point }, keyA);
    assert.equal((await invoke(bystander.id, keyB)).status, 200);
    const childrenBefore = dbChildren();
    assert.equal(childrenBefore.length, 2);

    const started = Date.now();
    const stuck = invoke(endless.id, keyA);
    await new Promise((r) => setTimeout(r, 300));
    let slowest = 0;
    let answered = 0;
    while (Date.now() - started < 1700) {
      const t0 = Date.now();
      const [db, api] = await Promise.all([
        invoke(bystander.id, keyB),
        server.call("GET", "/functions", undefined, { "x-api-key": keyA }),
      ]);
      assert.equal(db.status, 200, await db.text());
      assert.equal(api.status, 200);
      slowest = Math.max(slowest, Date.now() - t0);
      answered++;
    }
    const failed = await stuck;
    const elapsed = Date.now() - started;
    assert.ok(failed.status === 504 || failed.status === 500, `status ${failed.status}`);
    assert.ok(elapsed < 4000, `the endless invocation took ${elapsed} ms`);
    assert.ok(answered >= 5, `only ${answered} bystander rounds`);
    // Blocked behind the stuck statement, a request would take until it is killed (2 s).
    assert.ok(slowest < 1000, `a bystander request took ${slowest} ms`);

    // The stuck child was killed and replaced; the project's database works again.
    const res = await invoke(afterwards.id, keyA);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.deepEqual(JSON.parse(text), { n: 1 });
    const childrenAfter = dbChildren();
    assert.equal(childrenAfter.length, 2);
    assert.notDeepEqual(childrenAfter.sort(), childrenBefore.sort());
  });
});

describe("the project data API", () => {
  it("runs one statement with params, or several in order, and lists tables", async () => {
    const key = await newProject("data-api");
    const several = await sql(key, {
      sql: "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, photo BLOB);\nINSERT INTO people (name) VALUES ('ada'); INSERT INTO people (name) VALUES ('grace')",
    });
    assert.equal(several.status, 200);
    assert.equal(several.body.data.length, 3);
    assert.deepEqual(
      several.body.data.map((r: any) => r.meta.changes),
      [0, 1, 1],
    );
    const one = await sql(key, {
      sql: "INSERT INTO people (name, photo) VALUES (?, ?) RETURNING id, name, photo",
      params: ["linus", [1, 2, 3]],
    });
    assert.equal(one.status, 200);
    assert.deepEqual(one.body.data.results, [{ id: 3, name: "linus", photo: [1, 2, 3] }]);
    assert.equal(one.body.data.meta.last_row_id, 3);
    const flags = await sql(key, { sql: "SELECT ? AS yes, ? AS no", params: [true, false] });
    assert.deepEqual(flags.body.data.results, [{ yes: 1, no: 0 }]);
    const tables = await server.call("GET", "/database_tables", undefined, { "x-api-key": key });
    const { data } = (await tables.json()) as any;
    assert.deepEqual(data, [
      {
        name: "people",
        sql: "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, photo BLOB)",
        columns: [
          { name: "id", type: "INTEGER", notnull: false, default_value: null, primary_key: true },
          { name: "name", type: "TEXT", notnull: true, default_value: null, primary_key: false },
          { name: "photo", type: "BLOB", notnull: false, default_value: null, primary_key: false },
        ],
        row_count: 3,
      },
    ]);
  });

  it("refuses bad input with a 4xx and changes nothing", async () => {
    const key = await newProject("data-api-bad");
    await sql(key, { sql: "CREATE TABLE t (id INTEGER PRIMARY KEY)" });
    await sql(key, { sql: "INSERT INTO t VALUES (1)" });
    const count = async () =>
      (await sql(key, { sql: "SELECT count(*) AS n FROM t" })).body.data.results[0].n;

    const raw = await server.call("POST", "/database/query", "{not json", { "x-api-key": key });
    assert.equal(raw.status, 400);
    assert.equal(((await raw.json()) as any).error, "The request body is not valid JSON");
    for (const body of [
      {},
      { sql: "" },
      { sql: 5 },
      { sql: "SELECT ?", params: [{ a: 1 }] },
      { sql: "SELECT ?", params: "x" },
      { sql: "SELECT 1", extra: true },
    ]) {
      const res = await sql(key, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.body.error, /^Invalid /);
    }
    const failing = await sql(key, { sql: "INSERT INTO t VALUES (2), (1)" });
    assert.equal(failing.status, 400);
    assert.equal(
      failing.body.error,
      "UNIQUE constraint failed: t.id: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_PRIMARYKEY)",
    );
    const noTable = await sql(key, { sql: "DELETE FROM nope" });
    assert.deepEqual(noTable, {
      status: 400,
      body: { error: "no such table: nope: SQLITE_ERROR" },
    });
    const refused = await sql(key, { sql: "ATTACH DATABASE '/etc/passwd' AS p" });
    assert.deepEqual(refused, { status: 400, body: { error: "not authorized: SQLITE_AUTH" } });
    const mixed = await sql(key, { sql: "SELECT 1; SELECT ?", params: [1] });
    assert.equal(mixed.status, 400);
    assert.equal(await count(), 1);

    // Several statements run in order, each on its own: those before a failure stay applied.
    const partly = await sql(key, {
      sql: "INSERT INTO t VALUES (5); INSERT INTO nope VALUES (1); INSERT INTO t VALUES (6)",
    });
    assert.deepEqual(partly, {
      status: 400,
      body: {
        error: "Statement 2 failed: no such table: nope: SQLITE_ERROR",
        details: { statement: 2, applied: 1 },
      },
    });
    assert.equal(await count(), 2);
    const noKey = await fetch(`${server.api}/database/query`, {
      method: "POST",
      body: JSON.stringify({ sql: "SELECT 1" }),
    });
    assert.equal(noKey.status, 401);
  });

  it("leaves no database process behind when the server stops", async () => {
    const children = dbChildren();
    assert.equal(children.length, 2);
    await server.stop();
    for (const pid of children) assert.equal(fs.existsSync(`/proc/${pid}`), false, `pid ${pid}`);
  });
});
