// D1's semantics on one project's SQLite file: how statements are split, bound and refused,
// what a result and its meta look like, and how errors read. It runs inside a database child
// process (src/db/child.ts); the host only moves its results around. The reference for every
// rule here is Miniflare's D1 (and the D1 shim inside workerd), compared side by side in
// test/e2e/d1.test.ts.
import SQLite from "better-sqlite3";
import { exportDatabase, importStatements, type ExportResult, type ImportResult } from "./dump.js";
import { programOf, type Bound, type Catalog, type Program, type RangeQuery } from "./meter.js";
import { parameters, refusal, splitStatements, tokenize, unquote, type Piece } from "./sql.js";

/** A value as it crosses the D1 wire: blobs are arrays of bytes. */
export type D1Value = number | string | null | number[];

export interface D1Query {
  sql: string;
  params?: D1Value[] | null;
}

export interface D1Meta {
  served_by: string;
  duration: number;
  changes: number;
  last_row_id: number;
  changed_db: boolean;
  size_after: number;
  rows_read: number;
  rows_written: number;
}

/** One statement's answer in D1's ROWS_AND_COLUMNS shape (the shim turns rows into objects). */
export interface RawResult {
  columns: string[];
  rows: unknown[][];
  meta: D1Meta;
}

/** The data API's answer for several statements: what ran, and where it stopped. */
export interface StatementsResult {
  /** How many statements the input holds. */
  statements: number;
  results: RawResult[];
  failed?: { statement: number; message: string };
}

export interface TableInfo {
  name: string;
  sql: string | null;
  columns: {
    name: string;
    type: string;
    notnull: boolean;
    default_value: string | null;
    primary_key: boolean;
  }[];
  row_count: number | null;
}

/** An error a D1 caller sees, worded as D1 words it (without the `D1_ERROR: ` prefix). */
export class D1Failure extends Error {}

export const messages = {
  noStatements: "No SQL statements detected.",
  emptyStatement: "SQL code did not contain a statement.",
  wrongParameterCount: "Wrong number of parameter bindings for SQL query.",
  parametersNotLast:
    "When executing multiple SQL statements in a single call, only the last statement can have parameters.",
  transaction:
    "To execute a transaction, please use the state.storage.transaction() or state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT statements. The JavaScript API is safer because it will automatically roll back on exceptions, and because it interacts correctly with Durable Objects' automatic atomic write coalescing.",
  notAuthorized: "not authorized: SQLITE_AUTH",
  paramsWithSeveral:
    'params can only be used with a single statement; send several statements without "params"',
};

const servedBy = "workerbase.db";

/** A b-tree of the database: a table, or one of its indexes. */
interface BTree {
  table: string;
  index?: string;
  withoutRowid?: boolean;
  /** Its key columns, once looked up (null: not plain columns). */
  keys?: { sql: string; desc: boolean }[] | null;
}

function quote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Where a seek starts: its op as a comparison with the key, in the b-tree's order. */
const startOps: Record<string, string> = { SeekGE: ">=", SeekGT: ">", SeekLE: "<=", SeekLT: "<" };
/** A range's end check: the comparison for keys within it, and for keys past it. */
const endOps: Record<string, [string, string]> = {
  IdxGT: ["<=", ">"],
  Gt: ["<=", ">"],
  IdxGE: ["<", ">="],
  Ge: ["<", ">="],
  IdxLT: [">=", "<"],
  Lt: [">=", "<"],
  IdxLE: [">", "<="],
  Le: [">", "<="],
};
const flip: Record<string, string> = { ">": "<", ">=": "<=", "<": ">", "<=": ">=" };
const sqliteSpace = /^[ \t\n\f\r]*$/;
/** Miniflare drops queries that are empty once indented `--` comment lines are removed. */
const blankQuery = (sql: string) => sql.replace(/^\s+--.*/gm, "").trim().length === 0;

function sqliteMessage(message: string, offset: number, code: string): string {
  const primary = code.split("_").slice(0, 2).join("_");
  const at = offset >= 0 ? ` at offset ${offset}` : "";
  const extended = code !== primary ? ` (extended: ${code})` : "";
  return `${message}${at}: ${primary}${extended}`;
}

function toSqlite(value: D1Value | undefined): unknown {
  if (Array.isArray(value)) return Buffer.from(new Uint8Array(value));
  return value ?? null;
}

function fromSqlite(value: unknown): unknown {
  return Buffer.isBuffer(value) ? Array.from(value) : value;
}

/** Where in `piece` a resolve-time error (a column or function by name) points, or -1. */
function nameOffset(message: string, piece: Piece): number {
  const tokens = piece.tokens;
  const same = (i: number, name: string) =>
    tokens[i] && unquote(tokens[i].text).toLowerCase() === name.toLowerCase();
  let m = /^(?:no such column|ambiguous column name): (.+)$/.exec(message);
  if (m) {
    const parts = m[1].split(".");
    for (let i = 0; i < tokens.length; i++) {
      if (
        !parts.every(
          (part, k) => same(i + 2 * k, part) && (k === 0 || tokens[i + 2 * k - 1].text === "."),
        )
      )
        continue;
      const before = tokens[i - 1]?.text.toUpperCase();
      const assigned = tokens[i + 2 * parts.length - 1]?.text === "=";
      // SQLite names no position for an UPDATE's SET target.
      if (assigned && (before === "SET" || before === ",") && /^UPDATE$/i.test(tokens[0].text))
        return -1;
      return tokens[i].start - piece.start;
    }
    return -1;
  }
  m =
    /^(?:no such function|not authorized to use function): (\S+)$/.exec(message) ??
    /^(?:wrong number of arguments to function|misuse of window function) (\S+)\(\)$/.exec(message);
  const misuse = /^misuse of aggregate(?: function|:) (\S+)\(\)$/.exec(message);
  const name = (m ?? misuse)?.[1];
  if (name) {
    const calls = tokens.filter((t, i) => same(i, name) && tokens[i + 1]?.text === "(");
    // A misused aggregate is usually the later one (in WHERE, after the select list).
    const call = misuse ? calls[calls.length - 1] : calls[0];
    return call ? call.start - piece.start : -1;
  }
  m = /^(?:table|index|view|trigger) (\S+) already exists$/.exec(message);
  if (m) {
    const found = tokens.find((t, i) => same(i, m![1]));
    return found ? found.start - piece.start : -1;
  }
  return -1;
}

/** Any error as a D1 caller should read it. */
export function failureOf(err: unknown): D1Failure {
  if (err instanceof D1Failure) return err;
  if (err instanceof SQLite.SqliteError)
    return new D1Failure(sqliteMessage(err.message, -1, err.code));
  return new D1Failure(err instanceof Error ? err.message : String(err));
}

/** One project's database, open in a child process. */
export class ProjectDatabase {
  private db: SQLite.Database;
  private statements = new Map<string, SQLite.Statement>();
  private stateQuery: SQLite.Statement;
  private totalChangesQuery: SQLite.Statement;
  private lastRowidQuery: SQLite.Statement;
  private schemaVersionQuery: SQLite.Statement;
  /** Each statement's program (for rows_read/rows_written), with the schema it was read at. */
  private programs = new Map<string, { version: number; program: Program | null }>();
  /** What each b-tree is, with the schema it was read at. */
  private btrees?: { version: number; byRoot: Map<number, BTree> };
  /** Prepared counting queries (row counts and index ranges), by their SQL. */
  private probes = new Map<string, SQLite.Statement>();
  private inTransaction: (fn: () => unknown) => unknown;

  /** `maxResultBytes` bounds one answer (roughly, as JSON), so no tenant floods the host. */
  constructor(
    file: string,
    private maxResultBytes = 32 * 1024 * 1024,
  ) {
    this.db = new SQLite(file);
    this.db.pragma("journal_mode = WAL");
    // FULL in a cluster (WORKERBASE_DB_SYNCHRONOUS): a commit is on disk before it is acknowledged.
    this.db.pragma(
      process.env.WORKERBASE_DB_SYNCHRONOUS === "FULL"
        ? "synchronous = FULL"
        : "synchronous = NORMAL",
    );
    this.db.pragma("busy_timeout = 5000");
    // At most 4 MB of page cache per open project (a process keeps many open).
    this.db.pragma("cache_size = -4000");
    this.db.pragma("foreign_keys = ON");
    // D1 runs with recursive triggers off; this build of SQLite defaults to on.
    this.db.pragma("recursive_triggers = OFF");
    this.stateQuery = this.db.prepare(
      "SELECT total_changes() AS total, last_insert_rowid() AS rowid," +
        " (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size()) AS size",
    );
    // What the statement check cannot see (a view made before it, a name given as a string
    // after a comma) still never shows the file's path: D1's refusal, from a shadowing table.
    this.db.table("pragma_database_list", {
      columns: ["seq", "name", "file"],
      rows: function* () {
        yield* [];
        throw new D1Failure(messages.notAuthorized);
      },
    });
    this.totalChangesQuery = this.db.prepare("SELECT total_changes() AS n").pluck();
    this.lastRowidQuery = this.db.prepare("SELECT last_insert_rowid() AS n").pluck();
    this.schemaVersionQuery = this.db
      .prepare("SELECT schema_version FROM pragma_schema_version()")
      .pluck();
    this.inTransaction = this.db.transaction((fn: () => unknown) => fn());
  }

  close(): void {
    this.db.close();
  }

  /** D1's query: every statement in one transaction (all or nothing), one result each. */
  query(queries: D1Query[]): RawResult[] {
    const live = queries.filter((q) => !blankQuery(q.sql));
    if (live.length === 0) throw new D1Failure(messages.noStatements);
    return this.inTransaction(() =>
      live.map((q) => this.run(q.sql, q.params ?? [])),
    ) as RawResult[];
  }

  /** The data API: each statement in its own transaction, in order, stopping at an error. */
  statementsInOrder(sql: string, params: D1Value[]): StatementsResult {
    const pieces = splitStatements(sql).filter((p) => p.tokens.length > 0);
    if (pieces.length === 0) throw new D1Failure(messages.noStatements);
    if (pieces.length > 1 && params.length > 0) throw new D1Failure(messages.paramsWithSeveral);
    const results: RawResult[] = [];
    for (const [i, piece] of pieces.entries()) {
      try {
        results.push(...this.query([{ sql: piece.text, params }]));
      } catch (err) {
        if (!(err instanceof D1Failure)) throw err;
        return {
          statements: pieces.length,
          results,
          failed: { statement: i + 1, message: err.message },
        };
      }
    }
    return { statements: pieces.length, results };
  }

  /** The database as SQL text (schema, then rows as INSERTs), at most `maxBytes` of it. */
  exportSql(maxBytes: number): ExportResult {
    return exportDatabase(this.db, maxBytes);
  }

  /** Runs a SQL file in one transaction: all of it or, at the first failure, nothing. */
  importSql(sql: string): ImportResult {
    return importStatements(this.db, sql, {
      describe: (err, piece) => this.describe(err, piece),
      notAuthorized: messages.notAuthorized,
    });
  }

  /** Every user table with its columns and row count. */
  tables(): TableInfo[] {
    const rows = this.db
      .prepare(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'table'" +
          " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'" +
          " ORDER BY name",
      )
      .all() as { name: string; sql: string | null }[];
    return rows.map(({ name, sql }) => {
      const quoted = `"${name.replace(/"/g, '""')}"`;
      const columns = (
        this.db.prepare(`PRAGMA table_info(${quoted})`).all() as {
          name: string;
          type: string;
          notnull: number;
          dflt_value: string | null;
          pk: number;
        }[]
      ).map((c) => ({
        name: c.name,
        type: c.type,
        notnull: c.notnull === 1,
        default_value: c.dflt_value,
        primary_key: c.pk > 0,
      }));
      let rowCount: number | null = null;
      try {
        rowCount = (this.db.prepare(`SELECT count(*) AS n FROM ${quoted}`).get() as { n: number })
          .n;
      } catch {
        // A virtual table whose module is missing cannot be counted.
      }
      return { name, sql, columns, row_count: rowCount };
    });
  }

  private state(): { total: number; rowid: number; size: number } {
    return this.stateQuery.get() as { total: number; rowid: number; size: number };
  }

  /**
   * One D1 query: statements before the last run to completion (they may not take
   * parameters), the last one is bound and answers.
   */
  private run(sql: string, params: D1Value[]): RawResult {
    const started = performance.now();
    const before = this.state();
    const pieces = splitStatements(sql);
    let answer: Omit<RawResult, "meta"> & { read: number; written: number } = {
      columns: [],
      rows: [],
      read: 0,
      written: 0,
    };
    for (const [i, whole] of pieces.entries()) {
      // Like D1, a statement after the first is compiled from its first non-blank character
      // (error offsets count from there).
      const blank = i === 0 ? 0 : /^[ \t\n\f\r]*/.exec(whole.text)![0].length;
      const piece = { ...whole, start: whole.start + blank, text: whole.text.slice(blank) };
      const last = sqliteSpace.test(sql.slice(piece.end));
      if (piece.tokens.length === 0) {
        if (last) throw new D1Failure(messages.emptyStatement);
        continue;
      }
      answer = this.runPiece(piece, last ? params : null, last);
      if (last) break;
    }
    const after = this.state();
    const changes = after.total - before.total;
    return {
      columns: answer.columns,
      rows: answer.rows,
      meta: {
        served_by: servedBy,
        duration: performance.now() - started,
        changes,
        last_row_id: after.rowid,
        changed_db: changes !== 0 || after.rowid !== before.rowid || after.size !== before.size,
        size_after: after.size,
        rows_read: answer.read,
        rows_written: answer.written,
      },
    };
  }

  /**
   * Runs one statement; `params` null means it is not the last and may take none. Only the
   * last statement's rows read and written are measured: D1 reports those.
   */
  private runPiece(piece: Piece, params: D1Value[] | null, measured: boolean) {
    const numbered = parameters(piece.tokens, piece.start);
    if (numbered.error) {
      const offset = Buffer.byteLength(piece.text.slice(0, numbered.error.offset));
      throw new D1Failure(sqliteMessage(numbered.error.message, offset, "SQLITE_ERROR"));
    }
    // Refuse before preparing: SQLite applies some PRAGMAs while it compiles them.
    const refused = refusal(piece.tokens);
    if (refused === "transaction") throw new D1Failure(messages.transaction);
    if (refused === "auth") throw new D1Failure(messages.notAuthorized);
    const stmt = this.prepare(piece);
    if (params === null && numbered.count > 0) throw new D1Failure(messages.parametersNotLast);
    const values = params ?? [];
    if (values.length !== numbered.count) throw new D1Failure(messages.wrongParameterCount);
    // better-sqlite3 binds unnamed parameters (`?` and gaps) by position and named ones
    // (`?NNN`, `:a`) from an object keyed by the name without its first character.
    const positional: unknown[] = [];
    const named: Record<string, unknown> = {};
    numbered.names.forEach((name, i) => {
      if (name === null) positional.push(toSqlite(values[i]));
      else named[name.slice(1)] = toSqlite(values[i]);
    });
    const args = numbered.names.some((n) => n !== null) ? [...positional, named] : positional;
    const program = measured ? this.programOf(piece, args) : null;
    const totalBefore = measured ? (this.totalChangesQuery.get() as number) : 0;
    const rowidBefore = measured ? (this.lastRowidQuery.get() as number) : 0;
    const catalog = this.catalog();
    // A write changes what its loops walked, so ask before it runs; a read, after.
    if (program && !stmt.readonly) {
      try {
        program.prefetch(catalog, values.map(toSqlite));
      } catch {
        // Counting is best effort: it never fails a statement.
      }
    }
    let columns: string[] = [];
    let rows: unknown[][] = [];
    let changes: number;
    try {
      if (stmt.reader) {
        columns = stmt.columns().map((c) => c.name);
        rows = (stmt.raw(true).all(...args) as unknown[][]).map((row) => row.map(fromSqlite));
        this.checkSize(rows);
        changes = stmt.readonly ? 0 : rows.length;
      } else {
        changes = stmt.run(...args).changes;
      }
    } catch (err) {
      throw this.describe(err, piece);
    }
    // An EXPLAIN runs no program: it reads and writes nothing.
    if (!program) return { columns, rows, read: 0, written: 0 };
    let counts = { read: 0, written: 0 };
    try {
      counts = program.measure({
        returned: rows.length,
        changes,
        totalChanges: (this.totalChangesQuery.get() as number) - totalBefore,
        inserted: this.lastRowidQuery.get() !== rowidBefore,
        params: values.map(toSqlite),
        catalog,
      });
    } catch {
      // Counting is best effort: it never fails a statement that ran.
    }
    return { columns, rows, ...counts };
  }

  /** The statement's program as EXPLAIN lists it, or null for an EXPLAIN itself. */
  private programOf(piece: Piece, args: unknown[]): Program | null {
    if (/^EXPLAIN$/i.test(piece.tokens[0]?.text ?? "")) return null;
    const version = this.schemaVersionQuery.get() as number;
    const cached = this.programs.get(piece.text);
    if (cached && cached.version === version) return cached.program;
    let program: Program | null = null;
    try {
      // EXPLAIN takes the statement's parameters too (and ignores their values).
      const rows = this.db.prepare(`EXPLAIN ${piece.text}`).all(...args);
      program = programOf(rows as Record<string, unknown>[]);
    } catch {
      // Statements EXPLAIN does not take have nothing to measure.
    }
    if (this.programs.size >= 200) this.programs.clear();
    this.programs.set(piece.text, { version, program });
    return program;
  }

  /** What the b-tree starting at page `root` is. */
  private btree(root: number): BTree | undefined {
    const version = this.schemaVersionQuery.get() as number;
    if (this.btrees?.version !== version) {
      const byRoot = new Map<number, BTree>([[1, { table: "sqlite_schema" }]]);
      const rows = this.db
        .prepare("SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema WHERE rootpage > 0")
        .all() as { type: string; name: string; tbl_name: string; rootpage: number; sql: string }[];
      for (const row of rows) {
        byRoot.set(row.rootpage, {
          table: row.tbl_name,
          index: row.type === "index" ? row.name : undefined,
          withoutRowid: row.type === "table" && /\bWITHOUT\s+ROWID\b/i.test(row.sql ?? ""),
        });
      }
      this.btrees = { version, byRoot };
      this.probes.clear();
    }
    return this.btrees.byRoot.get(root);
  }

  /** Runs a counting query; undefined if it cannot run (a virtual table's module is gone). */
  private probe(sql: string, values: unknown[] = []): number | undefined {
    try {
      let stmt = this.probes.get(sql);
      if (!stmt) {
        stmt = this.db.prepare(sql).pluck();
        if (this.probes.size >= 200) this.probes.clear();
        this.probes.set(sql, stmt);
      }
      return Number(stmt.get(...values));
    } catch {
      return undefined;
    }
  }

  /** The key columns of a b-tree as SQL, in key order; undefined if not plain columns. */
  private keyColumns(tree: BTree): { sql: string; desc: boolean }[] | undefined {
    if (tree.keys !== undefined) return tree.keys ?? undefined;
    tree.keys = null;
    if (tree.withoutRowid) return undefined;
    if (!tree.index) {
      const names = (this.db.pragma(`table_info(${quote(tree.table)})`) as { name: string }[]).map(
        (c) => c.name.toLowerCase(),
      );
      if (names.includes("rowid")) return undefined;
      tree.keys = [{ sql: "rowid", desc: false }];
      return tree.keys;
    }
    const list = this.db.pragma(`index_list(${quote(tree.table)})`) as {
      name: string;
      partial: number;
    }[];
    if (list.find((i) => i.name === tree.index)?.partial !== 0) return undefined;
    const info = this.db.pragma(`index_xinfo(${quote(tree.index)})`) as {
      cid: number;
      name: string | null;
      desc: number;
      coll: string;
      key: number;
    }[];
    const keys: { sql: string; desc: boolean }[] = [];
    for (const column of info.filter((c) => c.key === 1)) {
      // An expression in the key cannot be compared from here.
      if (column.cid === -2 || column.name === null) return undefined;
      keys.push({
        sql: `${quote(column.name)} COLLATE ${quote(column.coll)}`,
        desc: column.desc === 1,
      });
    }
    tree.keys = keys;
    return keys;
  }

  /** The database's answers to a Program: row counts and index ranges, each asked once. */
  private catalog(): Catalog {
    const entries = new Map<string, number>();
    const ranges = new Map<string, { inRange: number; beyond: boolean } | undefined>();
    return {
      entries: (root, cap) => {
        const key = `${root}:${cap ?? ""}`;
        let n = entries.get(key);
        if (n === undefined) {
          const tree = this.btree(root);
          const table = tree && quote(tree.table);
          const sql =
            cap === undefined
              ? `SELECT count(*) FROM ${table}`
              : `SELECT count(*) FROM (SELECT 1 FROM ${table} LIMIT ${Math.max(0, cap)})`;
          n = tree ? (this.probe(sql) ?? 0) : 0;
          entries.set(key, n);
        }
        return n;
      },
      leafPages: (name) =>
        this.probe("SELECT count(*) FROM dbstat WHERE name = ? AND pagetype = 'leaf'", [name]),
      range: (query) => {
        const key = JSON.stringify(query, (_, v) =>
          typeof v === "bigint" ? `${v}n` : Buffer.isBuffer(v) ? v.toString("hex") : v,
        );
        if (!ranges.has(key)) ranges.set(key, this.range(query));
        return ranges.get(key);
      },
    };
  }

  /** Entries within an index (or rowid) range, and whether one lies past its end. */
  private range(query: RangeQuery): { inRange: number; beyond: boolean } | undefined {
    const tree = this.btree(query.root);
    const keys = tree && this.keyColumns(tree);
    if (!tree || !keys) return undefined;
    // Each bound as a condition on the key in the b-tree's order ("past" the end means after
    // it in the loop's direction); a DESC key column turns the comparison around.
    const condition = (bound: Bound, op: string): { sql: string; values: unknown[] } | null => {
      const columns = keys.slice(0, bound.values.length);
      if (columns.length < bound.values.length || columns.length === 0) return null;
      if (columns.some((c) => c.desc !== columns[0].desc)) return null;
      const flipped = columns[0].desc ? flip[op] : op;
      if (bound.values.some((v) => v === null)) {
        // A seek past NULL skips the NULL entries, which sort first.
        if (bound.values.length !== 1) return null;
        const column = columns[0].sql;
        if (flipped === ">") return { sql: `${column} IS NOT NULL`, values: [] };
        if (flipped === "<=") return { sql: `${column} IS NULL`, values: [] };
        return { sql: flipped === ">=" ? "1" : "0", values: [] };
      }
      const lhs =
        columns.length === 1 ? columns[0].sql : `(${columns.map((c) => c.sql).join(", ")})`;
      const rhs = columns.length === 1 ? "?" : `(${columns.map(() => "?").join(", ")})`;
      return { sql: `${lhs} ${flipped} ${rhs}`, values: bound.values };
    };
    const conditions: { sql: string; values: unknown[] }[] = [];
    if (query.start) {
      const c = condition(query.start, startOps[query.start.op]);
      if (!c) return undefined;
      conditions.push(c);
    }
    let beyond: { sql: string; values: unknown[] } | null = null;
    if (query.end) {
      const within = condition(query.end, endOps[query.end.op][0]);
      beyond = condition(query.end, endOps[query.end.op][1]);
      if (!within || !beyond) return undefined;
      conditions.push(within);
    }
    const from = `FROM ${quote(tree.table)}`;
    const where = conditions.length ? ` WHERE ${conditions.map((c) => c.sql).join(" AND ")}` : "";
    const limit = query.cap === undefined ? "" : ` LIMIT ${Math.max(0, Math.floor(query.cap))}`;
    const inRange = this.probe(
      `SELECT count(*) FROM (SELECT 1 ${from}${where}${limit})`,
      conditions.flatMap((c) => c.values),
    );
    if (inRange === undefined) return undefined;
    if (!beyond) return { inRange, beyond: false };
    const past = this.probe(`SELECT EXISTS (SELECT 1 ${from} WHERE ${beyond.sql})`, beyond.values);
    return past === undefined ? undefined : { inRange, beyond: past === 1 };
  }

  private checkSize(rows: unknown[][]): void {
    let bytes = 0;
    for (const row of rows) {
      for (const cell of row) {
        // Strings count as themselves, blobs as up to 4 characters per byte in JSON.
        bytes += typeof cell === "string" ? cell.length : Array.isArray(cell) ? cell.length * 4 : 8;
      }
      if (bytes > this.maxResultBytes)
        throw new D1Failure(
          `the result is larger than ${this.maxResultBytes} bytes; select fewer rows or columns`,
        );
    }
  }

  private prepare(piece: Piece): SQLite.Statement {
    let stmt = this.statements.get(piece.text);
    if (stmt) return stmt;
    try {
      stmt = this.db.prepare(piece.text);
    } catch (err) {
      throw this.describe(err, piece);
    }
    // A PRAGMA takes effect when compiled, so it is compiled every time it runs.
    if (piece.tokens.slice(0, 4).some((t) => /^PRAGMA$/i.test(t.text))) return stmt;
    if (this.statements.size >= 200) this.statements.clear();
    this.statements.set(piece.text, stmt);
    return stmt;
  }

  /** An error as D1 words it: SQLite's message, the offset it points at, and its codes. */
  private describe(err: unknown, piece: Piece): D1Failure {
    if (err instanceof D1Failure) return err;
    if (!(err instanceof SQLite.SqliteError)) return new D1Failure((err as Error).message);
    let offset = this.syntaxOffset(err.message, piece);
    if (offset < 0) offset = nameOffset(err.message, piece);
    if (offset >= 0) offset = Buffer.byteLength(piece.text.slice(0, offset));
    return new D1Failure(sqliteMessage(err.message, offset, err.code));
  }

  /**
   * The offset of the token a syntax error names. better-sqlite3 does not expose
   * sqlite3_error_offset, so find the first place where the input cut just after that token
   * already fails the same way (SQLite parses left to right, so that is where it failed).
   */
  private syntaxOffset(message: string, piece: Piece): number {
    const m = /^(?:near "([\s\S]*)": syntax error|unrecognized token: "([\s\S]*)")$/.exec(message);
    const token = m?.[1] ?? m?.[2];
    if (!token) return -1;
    const starts = new Set(tokenize(piece.text).map((t) => t.start));
    let tries = 0;
    for (let at = piece.text.indexOf(token); at >= 0 && tries < 64;) {
      if (starts.has(at)) {
        tries++;
        try {
          this.db.prepare(piece.text.slice(0, at + token.length));
        } catch (err) {
          if (err instanceof SQLite.SqliteError && err.message === message) return at;
        }
      }
      at = piece.text.indexOf(token, at + 1);
    }
    return -1;
  }
}
