// Export and import of a whole project database as SQL text, as `wrangler d1 export` and
// `wrangler d1 execute --file` do. It runs inside a database child process, on the
// connection ProjectDatabase (src/db/service.ts) holds open; the host only moves text around.
import type SQLite from "better-sqlite3";
import { parameters, refusal, splitStatements, type Piece } from "./sql.js";

/** An export: the SQL text, and what it holds. */
export interface ExportResult {
  sql: string;
  tables: number;
  rows: number;
}

/** What an import did: everything, or (when `failed` is set) nothing at all. */
export interface ImportResult {
  /** Statements run (the BEGIN and COMMIT of the file are not run: see `skipped`). */
  statements: number;
  /** BEGIN, COMMIT and END statements of the file, left out: the import is one transaction. */
  skipped: number;
  /** Rows inserted, updated or deleted. */
  changes: number;
  /** Why nothing was imported; `statement` is the failing one's number in the file from 1. */
  failed?: { statement?: number; sql?: string; message: string };
}

/** How the database words a failed statement, and the sentence for a refused one. */
export interface ImportContext {
  describe: (err: unknown, piece: Piece) => Error;
  notAuthorized: string;
}

/** sqlite_% tables are SQLite's own; _cf_% ones are D1's, which a database never shows. */
const internal = (name: string) => /^(sqlite_|_cf_)/i.test(name);

function quote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A limit as people read it: whole MiB, else bytes. */
export function mib(bytes: number): string {
  const mebibytes = bytes / 1024 / 1024;
  return Number.isInteger(mebibytes) ? `${mebibytes} MiB` : `${bytes} bytes`;
}

/** A real as SQL: the shortest text that reads back as the same double, never an integer. */
function realLiteral(value: number): string {
  if (value === Infinity) return "9.0e+999";
  if (value === -Infinity) return "-9.0e+999";
  const text = String(value);
  return /[.e]/.test(text) ? text : `${text}.0`;
}

/** One value, as read with safe integers (integers are bigints), as a SQL literal. */
export function sqlLiteral(value: unknown): string {
  if (value === null) return "NULL";
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") return realLiteral(value);
  if (typeof value === "string") {
    // The sqlite3 shell cuts a line at a NUL and drops a CR before a line's end, even inside a
    // string: such text goes as its UTF-8 bytes.
    if (/[\0\r]/.test(value)) return `CAST(X'${Buffer.from(value).toString("hex")}' AS TEXT)`;
    return `'${value.replace(/'/g, "''")}'`;
  }
  if (Buffer.isBuffer(value)) return `X'${value.toString("hex").toUpperCase()}'`;
  throw new Error(`cannot write a ${typeof value} as SQL`);
}

interface SchemaRow {
  type: string;
  name: string;
  tbl_name: string;
  sql: string;
}

interface Column {
  name: string;
  type: string;
  pk: number;
  hidden: number;
}

/**
 * The columns an INSERT of the table names: its ordinary columns (generated ones are
 * computed again), led by the rowid when the table has one that no column holds, so rows
 * keep their rowids.
 */
function insertColumns(db: SQLite.Database, table: string): string[] {
  const columns = db.prepare(`PRAGMA table_xinfo(${quote(table)})`).all() as Column[];
  const names = columns.filter((c) => c.hidden === 0).map((c) => quote(c.name));
  const listed = db.prepare("SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?");
  const withoutRowid = (listed.get(table) as { wr: number } | undefined)?.wr === 1;
  const keys = columns.filter((c) => c.pk > 0);
  const aliased = keys.length === 1 && keys[0].type.toUpperCase() === "INTEGER";
  if (withoutRowid || aliased) return names;
  const taken = new Set(columns.map((c) => c.name.toLowerCase()));
  const rowid = ["rowid", "_rowid_", "oid"].find((name) => !taken.has(name));
  return rowid ? [rowid, ...names] : names;
}

/**
 * The database as SQL text: D1's `PRAGMA defer_foreign_keys`, the tables, their rows as
 * INSERTs, the AUTOINCREMENT counters, then indexes, views and triggers (after the rows, so
 * no trigger fires while they load). It loads in the sqlite3 shell as it is and through an
 * import. Past `maxBytes` it stops with a sentence saying so.
 */
export function exportDatabase(db: SQLite.Database, maxBytes: number): ExportResult {
  const read = db.transaction((): ExportResult => {
    const lines: string[] = [];
    let bytes = 0;
    let rows = 0;
    const push = (line: string) => {
      bytes += Buffer.byteLength(line) + 1;
      if (bytes > maxBytes)
        throw new Error(
          `The database's export is larger than ${mib(maxBytes)}, the most one export holds ` +
            "(and one import takes); delete what is not needed, or copy the largest tables out with db query",
        );
      lines.push(line);
    };
    const schema = db
      .prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid",
      )
      .all() as SchemaRow[];
    const tables = schema.filter((s) => s.type === "table" && !internal(s.name));
    const virtual = tables.find((s) => /^CREATE\s+VIRTUAL\s+TABLE\b/i.test(s.sql));
    if (virtual)
      throw new Error(
        `The database has a virtual table, "${virtual.name}", which an export cannot hold ` +
          "(D1 does not export them either): drop it, export, and create it again afterwards",
      );
    push("PRAGMA defer_foreign_keys=TRUE;");
    // Every table before any row: a row may refer to a table created after its own.
    for (const table of tables) push(`${table.sql};`);
    for (const table of tables) {
      const columns = insertColumns(db, table.name);
      const into = `INSERT INTO ${quote(table.name)} (${columns.join(",")}) VALUES(`;
      const select = db
        .prepare(`SELECT ${columns.join(", ")} FROM ${quote(table.name)}`)
        .raw(true)
        .safeIntegers(true);
      for (const row of select.iterate() as IterableIterator<unknown[]>) {
        push(`${into}${row.map(sqlLiteral).join(",")});`);
        rows++;
      }
    }
    if (schema.some((s) => s.type === "table" && s.name === "sqlite_sequence")) {
      const counters = db
        .prepare("SELECT name, seq FROM sqlite_sequence")
        .safeIntegers(true)
        .all() as { name: string; seq: unknown }[];
      const exported = new Set(tables.map((t) => t.name));
      for (const { name, seq } of counters) {
        if (!exported.has(name)) continue;
        // Only this table's counter: others of the database imported into stay as they are.
        push(`DELETE FROM sqlite_sequence WHERE name = ${sqlLiteral(name)};`);
        push(
          `INSERT INTO sqlite_sequence (name, seq) VALUES(${sqlLiteral(name)},${sqlLiteral(seq)});`,
        );
      }
    }
    for (const item of schema) {
      if (item.type === "table" || internal(item.name) || internal(item.tbl_name)) continue;
      push(`${item.sql};`);
    }
    return { sql: lines.join("\n") + "\n", tables: tables.length, rows };
  });
  return read();
}

/** Characters of SQL tokenized at once: a 100 MiB file's tokens at once would not fit in memory. */
const windowChars = 1024 * 1024;

/** The statements of `sql`, a window at a time (each piece's offsets are within its window). */
function* statementsOf(sql: string): Generator<Piece> {
  let at = 0;
  let size = windowChars;
  while (at < sql.length) {
    const end = Math.min(sql.length, at + size);
    const pieces = splitStatements(sql.slice(at, end));
    // Every piece but the last ended at a `;` of its own; the last may run past the window.
    const complete = end === sql.length ? pieces : pieces.slice(0, -1);
    if (complete.length === 0) {
      size *= 2;
      continue;
    }
    for (const piece of complete) {
      // From its first non-blank character, as D1 compiles it (error offsets count from there).
      const blank = /^[ \t\n\f\r]*/.exec(piece.text)![0].length;
      yield { ...piece, start: piece.start + blank, text: piece.text.slice(blank) };
    }
    at += complete[complete.length - 1].end;
    size = windowChars;
  }
}

/** The start of a statement, as an error names it. */
function preview(text: string): string {
  const flat = text
    .replace(/^(\s|--[^\n]*\n?|\/\*[\s\S]*?\*\/)+/, "")
    .replace(/\s+/g, " ")
    .replace(/\s*;$/, "")
    .trim();
  return flat.length > 60 ? `${flat.slice(0, 60).trimEnd()}…` : flat;
}

/** Why the import cannot run this statement as it is, or null. */
function refused(piece: Piece, context: ImportContext): string | null {
  const why = refusal(piece.tokens);
  if (why === "transaction")
    return `${piece.tokens[0].text.toUpperCase()} cannot run in an import, which is one transaction of its own (its BEGIN and COMMIT are left out)`;
  if (why === "auth") return context.notAuthorized;
  const numbered = parameters(piece.tokens, piece.start);
  if (numbered.error || numbered.count > 0)
    return "an import binds no parameters (?, :name); write the values into the statement";
  return null;
}

/**
 * Runs a SQL file in one transaction: all of it, or (at the first failing statement, or when
 * the rows break a foreign key at the end) nothing. The file's BEGIN, COMMIT and END are left
 * out, so `sqlite3 .dump` output imports too; foreign keys are checked once, at the end, so
 * tables may come in any order (D1's `PRAGMA defer_foreign_keys=TRUE`, for the whole import).
 */
export function importStatements(
  db: SQLite.Database,
  sql: string,
  context: ImportContext,
): ImportResult {
  const totalChanges = db.prepare("SELECT total_changes()").pluck();
  const before = totalChanges.get() as number;
  let ordinal = 0;
  let run = 0;
  let skipped = 0;
  const outcome = (failed?: ImportResult["failed"]): ImportResult => ({
    statements: failed ? 0 : run,
    skipped,
    changes: failed ? 0 : (totalChanges.get() as number) - before,
    ...(failed ? { failed } : {}),
  });
  db.prepare("BEGIN IMMEDIATE").run();
  try {
    db.pragma("defer_foreign_keys = ON");
    for (const piece of statementsOf(sql)) {
      if (piece.tokens.length === 0) continue;
      ordinal++;
      const fail = (message: string) =>
        outcome({ statement: ordinal, sql: preview(piece.text), message });
      if (/^(BEGIN|COMMIT|END)$/i.test(piece.tokens[0].text)) {
        skipped++;
        continue;
      }
      const why = refused(piece, context);
      if (why) return fail(why);
      try {
        const stmt = db.prepare(piece.text);
        if (!stmt.reader) stmt.run();
        // A SELECT in the file runs for its effects (its functions), its rows unread.
        else for (const rows = stmt.iterate(); !rows.next().done;);
      } catch (err) {
        return fail(context.describe(err, piece).message);
      }
      run++;
    }
    if (ordinal === 0) return outcome({ message: "The SQL file holds no statements" });
    try {
      db.prepare("COMMIT").run();
    } catch (err) {
      const failure =
        foreignKeyFailure(db) ?? `The import could not commit: ${(err as Error).message}`;
      return outcome({ message: failure });
    }
    return outcome();
  } finally {
    if (db.inTransaction) db.prepare("ROLLBACK").run();
  }
}

/** Which row breaks a foreign key, while the failed import's transaction is still open. */
function foreignKeyFailure(db: SQLite.Database): string | null {
  const row = db.prepare("PRAGMA foreign_key_check").get() as
    { table: string; rowid: number | null; parent: string } | undefined;
  if (!row) return null;
  const which = row.rowid === null ? "a row" : `row ${row.rowid}`;
  return `At the end of the import, FOREIGN KEY constraint failed: ${which} of "${row.table}" refers to a row of "${row.parent}" that does not exist`;
}
