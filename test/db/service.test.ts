import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import SQLite from "better-sqlite3";
import {
  D1Failure,
  messages,
  ProjectDatabase,
  type D1Value,
  type RawResult,
} from "../../src/db/service.js";

let dir: string;
let file: string;
let db: ProjectDatabase;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-db-"));
  file = path.join(dir, "project.sqlite");
  db = new ProjectDatabase(file);
  db.query([
    { sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, data BLOB, n REAL)" },
  ]);
});
after(() => {
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function one(sql: string, params: D1Value[] = []): RawResult {
  return db.query([{ sql, params }])[0];
}

/** The message of the D1Failure `fn` throws (the test fails when it does not throw). */
function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof D1Failure, String(err));
    return err.message;
  }
  assert.fail("expected a D1 failure");
}

describe("binding", () => {
  it("binds ?NNN by number, ? by position, gaps and names as SQLite numbers them", () => {
    assert.deepEqual(one("SELECT ?2 AS a, ?1 AS b, ? AS c", [1, 2, 3]).rows, [[2, 1, 3]]);
    assert.deepEqual(one("SELECT ?3 AS c", [1, 2, 3]).rows, [[3]]);
    assert.deepEqual(one("SELECT :x AS a, @y AS b, :x AS c", ["x", "y"]).rows, [["x", "y", "x"]]);
  });

  it("stores arrays of bytes as blobs and answers blobs as arrays of bytes", () => {
    one("INSERT INTO t (name, data) VALUES (?, ?)", ["blob", [0, 1, 254, 255]]);
    const r = one("SELECT data, typeof(data) AS type FROM t WHERE name = ?", ["blob"]);
    assert.deepEqual(r.rows, [[[0, 1, 254, 255], "blob"]]);
    assert.deepEqual(one("SELECT typeof(?) AS a, typeof(?) AS b", [1, null]).rows, [
      ["real", "null"],
    ]);
  });

  it("needs exactly as many values as the statement's highest parameter number", () => {
    assert.equal(
      failure(() => one("SELECT ?, ?", [1])),
      messages.wrongParameterCount,
    );
    assert.equal(
      failure(() => one("SELECT ?2", [1, 2, 3])),
      messages.wrongParameterCount,
    );
  });
});

describe("several statements in one query", () => {
  it("runs the earlier ones and answers the last one", () => {
    const r = one("INSERT INTO t (name) VALUES ('m1'); SELECT name FROM t WHERE name = ?", ["m1"]);
    assert.deepEqual(r.rows, [["m1"]]);
    assert.equal(r.meta.changes, 1);
  });

  it("lets only the last one take parameters", () => {
    assert.equal(
      failure(() => one("SELECT ?; SELECT 1", [1])),
      messages.parametersNotLast,
    );
  });

  it("fails on an empty last statement but not on trailing blanks", () => {
    assert.equal(
      failure(() => one("SELECT 1; -- c")),
      messages.emptyStatement,
    );
    assert.equal(
      failure(() => one("SELECT 1;;")),
      messages.emptyStatement,
    );
    assert.deepEqual(one("SELECT 1 AS x;  \n").rows, [[1]]);
  });

  it("refuses a query with no statement at all", () => {
    assert.equal(
      failure(() => db.query([{ sql: "  " }, { sql: "\n  -- c" }])),
      messages.noStatements,
    );
  });
});

describe("transactions", () => {
  it("runs the queries of one request all or nothing", () => {
    const before = one("SELECT count(*) FROM t").rows[0][0];
    const message = failure(() =>
      db.query([
        { sql: "INSERT INTO t (name) VALUES ('tx1')" },
        { sql: "INSERT INTO t (name) VALUES ('tx1')" },
      ]),
    );
    assert.match(message, /^UNIQUE constraint failed: t\.name: SQLITE_CONSTRAINT \(extended/);
    assert.equal(one("SELECT count(*) FROM t").rows[0][0], before);
  });

  it("refuses transaction control with D1's sentence", () => {
    for (const sql of ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT a"])
      assert.equal(
        failure(() => one(sql)),
        messages.transaction,
      );
  });
});

describe("what a tenant may not do", () => {
  it("cannot attach another file, and no file is created", () => {
    const target = path.join(dir, "other.sqlite");
    assert.equal(
      failure(() => one(`ATTACH '${target}' AS o`)),
      messages.notAuthorized,
    );
    assert.equal(fs.existsSync(target), false);
  });

  it("cannot run PRAGMAs outside D1's list, not even at compile time", () => {
    assert.equal(
      failure(() => one("PRAGMA journal_mode = DELETE")),
      messages.notAuthorized,
    );
    assert.equal(
      failure(() => one("PRAGMA writable_schema = ON")),
      messages.notAuthorized,
    );
    const probe = new SQLite(file, { readonly: true });
    assert.equal(probe.pragma("journal_mode", { simple: true }), "wal");
    probe.close();
  });

  it("applies an allowed PRAGMA every time it runs", () => {
    const value = () => one("PRAGMA recursive_triggers").rows[0][0];
    assert.equal(value(), 0, "D1 starts with recursive triggers off");
    one("PRAGMA recursive_triggers = ON");
    assert.equal(value(), 1);
    one("PRAGMA recursive_triggers = OFF");
    assert.equal(value(), 0);
    one("PRAGMA recursive_triggers = ON");
    assert.equal(value(), 1);
    one("PRAGMA recursive_triggers = OFF");
  });

  it("cannot pull an answer larger than the limit through the host", () => {
    const small = new ProjectDatabase(path.join(dir, "small.sqlite"), 1000);
    try {
      assert.equal(
        (small.query([{ sql: "SELECT zeroblob(200) AS b" }])[0].rows[0][0] as number[]).length,
        200,
      );
      assert.equal(
        failure(() => small.query([{ sql: "SELECT zeroblob(2000) AS b" }])),
        "the result is larger than 1000 bytes; select fewer rows or columns",
      );
    } finally {
      small.close();
    }
  });

  it("cannot load extensions", () => {
    assert.equal(
      failure(() => one("SELECT load_extension('x')")),
      "not authorized: SQLITE_ERROR",
    );
  });
});

describe("errors read as D1 words them", () => {
  it("adds the offset SQLite points at, in bytes, and the result codes", () => {
    assert.equal(
      failure(() => one("SELECT 'é', nocol FROM t")),
      "no such column: nocol at offset 13: SQLITE_ERROR",
    );
    assert.equal(
      failure(() => one("SELECT 1 FROM t WHERE 1 1")),
      'near "1": syntax error at offset 24: SQLITE_ERROR',
    );
    assert.equal(
      failure(() => one("SELECT * FROM nope")),
      "no such table: nope: SQLITE_ERROR",
    );
    assert.equal(
      failure(() => one("SELECT * FROM t WHERE")),
      "incomplete input: SQLITE_ERROR",
    );
    assert.equal(
      failure(() => one("INSERT INTO t (id) VALUES (1), (1)")),
      "UNIQUE constraint failed: t.id: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_PRIMARYKEY)",
    );
  });

  it("counts a later statement's offset from its first non-blank character", () => {
    assert.equal(
      failure(() => one("SELECT 1;\n   SELECT nocol")),
      "no such column: nocol at offset 7: SQLITE_ERROR",
    );
  });
});

describe("meta", () => {
  it("reports changes, the last row id and whether the database changed", () => {
    const insert = one("INSERT INTO t (name, n) VALUES ('meta', 1)");
    assert.equal(insert.meta.changes, 1);
    // The row and its entry in the UNIQUE index on name.
    assert.equal(insert.meta.rows_written, 2);
    assert.equal(insert.meta.changed_db, true);
    const read = one("SELECT * FROM t WHERE id = ?", [insert.meta.last_row_id]);
    assert.equal(read.meta.changes, 0);
    assert.equal(read.meta.changed_db, false);
    assert.equal(read.meta.rows_read, 1);
    assert.ok(read.meta.size_after >= 4096 && read.meta.size_after % 4096 === 0);
    const update = one("UPDATE t SET n = n + 1 WHERE name LIKE 'm%'");
    assert.equal(update.meta.changes, 2);
    // LIKE scans the whole table.
    assert.equal(update.meta.rows_read, one("SELECT count(*) FROM t").rows[0][0]);
  });
});

describe("rows read and written, as D1's SQLite counts them", () => {
  const counts = (sql: string, params: D1Value[] = []) => {
    const { meta } = one(sql, params);
    return [meta.rows_read, meta.rows_written];
  };
  before(() => {
    one("CREATE TABLE m (id INTEGER PRIMARY KEY, tag TEXT, v INTEGER)");
  });
  after(() => {
    one("DROP TABLE m");
    one("DROP TABLE IF EXISTS m2");
  });

  it("counts nothing for a statement that touches no row", () => {
    assert.deepEqual(counts("SELECT 1"), [0, 0]);
    assert.deepEqual(counts("SELECT ? + ? AS s", [1, 2]), [0, 0]);
    assert.deepEqual(counts("EXPLAIN SELECT * FROM m"), [0, 0]);
  });

  it("counts a scan's rows, and the one look of a scan of an empty table", () => {
    assert.deepEqual(counts("SELECT * FROM m"), [1, 0]);
    assert.deepEqual(counts("SELECT count(*) FROM m"), [0, 0]);
    assert.deepEqual(counts("INSERT INTO m (tag, v) VALUES ('a', 1), ('b', 2), ('c', 3)"), [0, 3]);
    assert.deepEqual(counts("SELECT * FROM m"), [3, 0]);
    assert.deepEqual(counts("SELECT * FROM m WHERE v = 2"), [3, 0]);
    assert.deepEqual(counts("SELECT count(*) FROM m"), [3, 0]);
    assert.deepEqual(counts("SELECT * FROM m LIMIT 2"), [2, 0]);
    // The sorter's rows too.
    assert.deepEqual(counts("SELECT * FROM m ORDER BY v"), [6, 0]);
  });

  it("counts the entries a rowid or index lookup lands on", () => {
    assert.deepEqual(counts("SELECT * FROM m WHERE id = ?", [2]), [1, 0]);
    assert.deepEqual(counts("SELECT * FROM m WHERE id = 99"), [1, 0]);
    one("CREATE INDEX m_tag ON m (tag)");
    // The entry found and the next one, where the range ends.
    assert.deepEqual(counts("SELECT * FROM m WHERE tag = ?", ["a"]), [2, 0]);
    // The last entry: nothing after it.
    assert.deepEqual(counts("SELECT * FROM m WHERE tag = 'c'"), [1, 0]);
    // An equality that finds nothing reads nothing; a range always reads where it starts.
    assert.deepEqual(counts("SELECT * FROM m WHERE tag = 'zz'"), [0, 0]);
    assert.deepEqual(counts("SELECT * FROM m WHERE tag > 'zz'"), [1, 0]);
    assert.deepEqual(counts("SELECT * FROM m WHERE tag IN ('a', 'c', 'zz')"), [6, 0]);
  });

  it("counts each row written and each index entry written with it", () => {
    assert.deepEqual(counts("INSERT INTO m (tag, v) VALUES ('d', 4)"), [0, 2]);
    // Inserting with a rowid checks that it is free.
    assert.deepEqual(counts("INSERT INTO m (id, tag, v) VALUES (10, 'e', 5)"), [1, 2]);
    assert.deepEqual(counts("INSERT INTO m (tag) VALUES ('f') RETURNING id"), [1, 2]);
    assert.deepEqual(counts("UPDATE m SET v = 0 WHERE id = 1"), [1, 1]);
    assert.deepEqual(counts("UPDATE m SET tag = 'aa' WHERE id = 1"), [1, 2]);
    assert.deepEqual(counts("DELETE FROM m WHERE tag = 'b'"), [2, 1]);
    assert.deepEqual(counts("DELETE FROM m WHERE v = 3"), [5, 1]);
  });

  it("reports the last statement of several, as D1 does", () => {
    assert.deepEqual(counts("SELECT * FROM m; SELECT 1"), [0, 0]);
    assert.deepEqual(counts("SELECT 1; SELECT * FROM m WHERE id = 1"), [1, 0]);
    const [first, second] = db.query([{ sql: "SELECT * FROM m" }, { sql: "SELECT 1" }]);
    assert.deepEqual(
      [first.meta.rows_read, second.meta.rows_read],
      [one("SELECT count(*) FROM m").rows[0][0], 0],
    );
  });

  it("counts a new table's rows in sqlite_schema", () => {
    assert.deepEqual(counts("CREATE TABLE m2 (a TEXT PRIMARY KEY)"), [1, 3]);
    assert.deepEqual(counts("CREATE TABLE IF NOT EXISTS m2 (a)"), [0, 0]);
  });
});

describe("the database file's path", () => {
  it("is in no answer: pragma_database_list is refused however it is named", () => {
    for (const sql of [
      "SELECT * FROM pragma_database_list",
      "PRAGMA database_list",
      'SELECT file FROM "pragma_database_list"',
      "SELECT * FROM t, 'pragma_database_list'",
    ]) {
      assert.equal(
        failure(() => one(sql)),
        messages.notAuthorized,
        sql,
      );
    }
  });

  it("is not shown by a view made before (nor through one)", () => {
    const other = new SQLite(file);
    other.exec("CREATE VIEW old_paths AS SELECT * FROM pragma_database_list");
    other.close();
    assert.equal(
      failure(() => one("SELECT * FROM old_paths")),
      messages.notAuthorized,
    );
    const answers = JSON.stringify(db.statementsInOrder("SELECT * FROM old_paths", []));
    assert.ok(!answers.includes(dir), answers);
    one("DROP VIEW old_paths");
  });
});

describe("the data API's statements", () => {
  it("runs each statement on its own and stops at the first failure", () => {
    const result = db.statementsInOrder(
      "CREATE TABLE s (a); INSERT INTO s VALUES (1); INSERT INTO nope VALUES (1); INSERT INTO s VALUES (2)",
      [],
    );
    assert.equal(result.statements, 4);
    assert.equal(result.results.length, 2);
    assert.deepEqual(result.failed, { statement: 3, message: "no such table: nope: SQLITE_ERROR" });
    assert.deepEqual(one("SELECT a FROM s").rows, [[1]]);
  });

  it("takes params only with a single statement", () => {
    assert.equal(
      failure(() => db.statementsInOrder("SELECT ?; SELECT 1", [1])),
      messages.paramsWithSeveral,
    );
    assert.deepEqual(db.statementsInOrder("SELECT ? AS v; -- note", [7]).results[0].rows, [[7]]);
  });

  it("lists user tables with columns and row counts, not SQLite's own", () => {
    one("CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL DEFAULT 'x')");
    one("INSERT INTO seq (v) VALUES ('a'), ('b')");
    one("CREATE VIEW v AS SELECT 1");
    const tables = db.tables();
    assert.deepEqual(
      tables.map((t) => t.name),
      ["s", "seq", "t"],
    );
    const seq = tables.find((t) => t.name === "seq")!;
    assert.equal(seq.row_count, 2);
    assert.deepEqual(seq.columns, [
      { name: "id", type: "INTEGER", notnull: false, default_value: null, primary_key: true },
      { name: "v", type: "TEXT", notnull: true, default_value: "'x'", primary_key: false },
    ]);
  });
});
