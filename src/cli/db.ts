import { CliError, UsageError, stringFlag } from "./args.js";
import { jsonFlag, readUserFile, type Command } from "./command.js";
import { platform } from "./http.js";
import { out, table } from "./output.js";

interface QueryResult {
  results: Record<string, unknown>[];
  meta?: { duration?: number; changes?: number; last_row_id?: number; rows_read?: number };
}

/** A SQL value for a table cell: blobs (arrays of bytes) by size, null as NULL. */
function sqlCell(value: unknown): string {
  if (value === null) return "NULL";
  if (Array.isArray(value)) return `<blob ${value.length} bytes>`;
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function formatResult(result: QueryResult): string {
  const lines: string[] = [];
  const rows = result.results ?? [];
  if (rows.length > 0) {
    const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    lines.push(
      table(
        columns,
        rows.map((r) => columns.map((c) => sqlCell(r[c]))),
        80,
      ),
    );
  }
  const meta = result.meta ?? {};
  const facts = [`${rows.length} row${rows.length === 1 ? "" : "s"}`];
  if (meta.changes) facts.push(`${meta.changes} changed`);
  if (meta.changes && meta.last_row_id) facts.push(`last row id ${meta.last_row_id}`);
  if (meta.duration !== undefined) facts.push(`${Math.round(meta.duration * 100) / 100} ms`);
  lines.push(out.paint.dim(facts.join(" · ")));
  return lines.join("\n");
}

interface TableInfo {
  name: string;
  columns?: (string | { name: string; type?: string })[];
  rows?: number;
  row_count?: number;
}

export const dbCommands: Command[] = [
  {
    name: "db query",
    usage: '"SQL" [--params JSON] [--file path] [--json]',
    summary: "run SQL on the project's database (several statements run in order)",
    args: [0, 1],
    flags: {
      ...jsonFlag,
      params: { type: "string", value: "JSON", help: "values for ? placeholders, a JSON array" },
      file: { type: "string", value: "path", help: "read the SQL from a file" },
    },
    async run(args) {
      const file = stringFlag(args, "file");
      const given = args.positionals[0];
      if ((given === undefined) === (file === undefined)) {
        throw new UsageError('give the SQL as one argument ("SELECT ...") or with --file');
      }
      const sql = given ?? readUserFile(file!, "SQL file");
      let params: unknown[] | undefined;
      const raw = stringFlag(args, "params");
      if (raw !== undefined) {
        try {
          params = JSON.parse(raw);
        } catch {
          throw new UsageError(`--params must be a JSON array, such as '[1, "a"]'`);
        }
        if (!Array.isArray(params))
          throw new UsageError(`--params must be a JSON array, such as '[1, "a"]'`);
      }
      const body = await platform(args).call<{ data: QueryResult | QueryResult[] }>(
        "POST",
        "/database/query",
        { json: { sql, ...(params ? { params } : {}) } },
      );
      if (args.flags.json) return out.json(body);
      const results = Array.isArray(body.data) ? body.data : [body.data];
      out.line(results.map(formatResult).join("\n\n"));
    },
  },
  {
    name: "db tables",
    usage: "[--json]",
    summary: "tables with their columns and row counts",
    args: [0, 0],
    flags: jsonFlag,
    async run(args) {
      const body = await platform(args).call<{ data: TableInfo[] }>("GET", "/database_tables");
      if (args.flags.json) return out.json(body);
      if (!Array.isArray(body.data)) throw new CliError("unexpected answer from /database_tables");
      if (body.data.length === 0) return out.line("No tables yet.");
      out.line(
        table(
          ["TABLE", "ROWS", "COLUMNS"],
          body.data.map((t) => [
            t.name,
            t.rows ?? t.row_count ?? "-",
            (t.columns ?? [])
              .map((c) => (typeof c === "string" ? c : c.type ? `${c.name} ${c.type}` : c.name))
              .join(", "),
          ]),
          120,
        ),
      );
    },
  },
];
