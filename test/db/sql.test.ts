import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parameters, refusal, splitStatements, tokenize } from "../../src/db/sql.js";

const texts = (sql: string) => splitStatements(sql).map((p) => p.text);
const numbered = (sql: string) => parameters(tokenize(sql));

describe("splitting SQL into statements", () => {
  it("splits on semicolons, each piece keeping its own semicolon", () => {
    assert.deepEqual(texts("SELECT 1; SELECT 2"), ["SELECT 1;", " SELECT 2"]);
    assert.deepEqual(texts("SELECT 1;"), ["SELECT 1;"]);
  });

  it("ignores semicolons inside strings, quoted names and comments", () => {
    const sql = `SELECT 'a;b', "c;d", [e;f], \`g;h\` -- i;j\n/* k;l */; SELECT 2`;
    assert.equal(splitStatements(sql).length, 2);
    assert.deepEqual(
      tokenize("SELECT 'it''s' AS x").map((t) => t.text),
      ["SELECT", "'it''s'", "AS", "x"],
    );
  });

  it("keeps a trigger's body, CASE ... END included, in one statement", () => {
    const trigger =
      "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = CASE WHEN new.a > 0 THEN 1 ELSE 0 END; DELETE FROM u; END;";
    assert.deepEqual(texts(`${trigger} SELECT 1`), [trigger, " SELECT 1"]);
  });

  it("gives comment-only and empty pieces no tokens", () => {
    const pieces = splitStatements("SELECT 1; -- note");
    assert.equal(pieces.length, 2);
    assert.equal(pieces[1].tokens.length, 0);
    assert.equal(splitStatements(";")[0].tokens.length, 0);
  });
});

describe("numbering parameters as SQLite does", () => {
  it("gives ? the next number and ?NNN its own", () => {
    assert.deepEqual(numbered("SELECT ?, ?, ?"), { count: 3, names: [null, null, null] });
    assert.deepEqual(numbered("SELECT ?2, ?"), { count: 3, names: [null, "?2", null] });
    assert.deepEqual(numbered("SELECT ?3"), { count: 3, names: [null, null, "?3"] });
    assert.deepEqual(numbered("SELECT ?1, ?1"), { count: 1, names: ["?1"] });
  });

  it("numbers a repeated name once", () => {
    assert.deepEqual(numbered("SELECT :a, @b, :a, $c, ?"), {
      count: 4,
      names: [":a", "@b", "$c", null],
    });
  });

  it("ignores what looks like a parameter inside strings and comments", () => {
    assert.equal(numbered("SELECT '?', \"?1\" -- ?\n, /* :a */ 1").count, 0);
  });

  it("refuses numbers outside 1..100 and more than 100 parameters, with the offset", () => {
    assert.deepEqual(numbered("SELECT ?0").error, {
      message: "variable number must be between ?1 and ?100",
      offset: 7,
    });
    assert.equal(numbered("SELECT ?101").error?.message.startsWith("variable number"), true);
    const many = "SELECT " + Array.from({ length: 101 }, () => "?").join(",");
    assert.deepEqual(numbered(many).error, { message: "too many SQL variables", offset: 207 });
    assert.equal(numbered("SELECT ?100").count, 100);
  });
});

describe("statements D1 refuses", () => {
  const refused = (sql: string) => refusal(tokenize(sql));

  it("refuses transaction control", () => {
    for (const sql of [
      "BEGIN",
      "begin immediate",
      "COMMIT",
      "END",
      "ROLLBACK TO s",
      "SAVEPOINT s",
      "RELEASE s",
    ])
      assert.equal(refused(sql), "transaction", sql);
  });

  it("refuses ATTACH, DETACH and names starting with _cf_", () => {
    assert.equal(refused("ATTACH '/etc/passwd' AS p"), "auth");
    assert.equal(refused("EXPLAIN ATTACH 'x' AS y"), "auth");
    assert.equal(refused("DETACH p"), "auth");
    assert.equal(refused("CREATE TABLE IF NOT EXISTS main._CF_x (a)"), "auth");
    assert.equal(refused('CREATE INDEX "_cf_i" ON t (a)'), "auth");
    assert.equal(refused("CREATE TABLE cf_x (a)"), null);
  });

  it("allows only D1's PRAGMAs, with the arguments they take", () => {
    for (const sql of [
      "PRAGMA table_info(t)",
      "PRAGMA main.table_info('t')",
      "PRAGMA table_list",
      "PRAGMA foreign_keys",
      "PRAGMA foreign_keys = OFF",
      "PRAGMA defer_foreign_keys = true",
      "PRAGMA optimize",
      "PRAGMA data_version",
    ])
      assert.equal(refused(sql), null, sql);
    for (const sql of [
      "PRAGMA journal_mode = DELETE",
      "PRAGMA writable_schema = 1",
      "PRAGMA user_version",
      "PRAGMA table_info",
      "PRAGMA foreign_keys = 2",
      "PRAGMA data_version = 1",
      "EXPLAIN PRAGMA temp_store_directory = '/tmp'",
    ])
      assert.equal(refused(sql), "auth", sql);
  });

  it("refuses the PRAGMA functions D1 refuses, however their name is written", () => {
    for (const sql of [
      "SELECT * FROM pragma_database_list",
      "SELECT file FROM pragma_database_list()",
      "SELECT * FROM PRAGMA_DATABASE_LIST",
      'SELECT * FROM main."pragma_database_list"',
      "SELECT * FROM [pragma_database_list]",
      "SELECT * FROM `pragma_database_list`",
      "SELECT * FROM 'pragma_database_list'",
      "SELECT * FROM t JOIN 'pragma_database_list'",
      "SELECT * FROM main.'pragma_database_list'",
      "SELECT (SELECT file FROM pragma_database_list) AS f",
      "WITH x AS (SELECT * FROM pragma_database_list) SELECT * FROM x",
      "CREATE VIEW v AS SELECT * FROM pragma_database_list",
      "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u SELECT file FROM pragma_database_list; END",
      "SELECT * FROM pragma_compile_options",
      "SELECT * FROM pragma_function_list",
      "SELECT * FROM pragma_user_version",
      "EXPLAIN SELECT * FROM pragma_database_list",
    ])
      assert.equal(refused(sql), "auth", sql);
  });

  it("allows D1's PRAGMA functions, and the names in strings and comments", () => {
    for (const sql of [
      "SELECT * FROM pragma_table_info('t')",
      "SELECT * FROM pragma_table_list",
      "SELECT * FROM pragma_index_list('t')",
      "SELECT * FROM pragma_foreign_keys",
      "SELECT 'pragma_database_list' AS s",
      "INSERT INTO t VALUES (1, 'pragma_database_list')",
      "SELECT * FROM t -- pragma_database_list",
      "SELECT * FROM t /* pragma_database_list */",
      "SELECT * FROM t WHERE a = 'x' || 'pragma_database_list'",
    ])
      assert.equal(refused(sql), null, sql);
  });
});
