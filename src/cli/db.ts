import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebStream } from "node:stream/web";
import { CliError, UsageError, stringFlag } from "./args.js";
import { jsonFlag, readUserBytes, readUserFile, type Command } from "./command.js";
import { platform, type Client } from "./http.js";
import { err, out, spinner, table } from "./output.js";

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

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** A size as people read it: bytes, KiB or MiB. */
function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} byte${bytes === 1 ? "" : "s"}`;
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : mib(bytes);
}

/** Files from this size on show how much of them is uploaded. */
const progressFromBytes = 1024 * 1024;

/**
 * Reports an upload on stderr: one line rewritten in place on a terminal, else a line at each
 * quarter (a log keeps a few lines, not hundreds).
 */
function uploadProgress(name: string, total: number): (sent: number) => void {
  if (total < progressFromBytes) return () => {};
  const tty = Boolean(process.stderr.isTTY);
  let shown = -1;
  return (sent) => {
    const percent = Math.floor((sent / total) * 100);
    const step = tty ? percent : Math.floor(percent / 25) * 25;
    if (step === shown) return;
    shown = step;
    const line = `uploading ${name}: ${mib(sent)} of ${mib(total)} (${percent}%)`;
    if (!tty) return err.line(line);
    process.stderr.write(`\r\x1b[K${line}${sent >= total ? "\n" : ""}`);
  };
}

/** POSTs `bytes` a chunk at a time, telling `progress` how many bytes have gone. */
async function upload(
  client: Client,
  route: string,
  bytes: Buffer,
  contentType: string,
  progress: (sent: number) => void,
): Promise<Response> {
  const chunkBytes = 256 * 1024;
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= bytes.length) return controller.close();
      const chunk = bytes.subarray(sent, sent + chunkBytes);
      sent += chunk.length;
      controller.enqueue(chunk);
      progress(sent);
    },
  });
  try {
    return await fetch(client.url(route), {
      method: "POST",
      headers: {
        "x-api-key": client.credential.value,
        "content-type": contentType,
        "content-length": String(bytes.length),
      },
      body,
      // A streamed request body must say so (fetch's rule); the answer comes after it.
      duplex: "half",
    } as RequestInit);
  } catch {
    throw new CliError(`cannot reach ${client.base}: is "workerbase serve" running?`);
  }
}

interface ImportAnswer {
  data: { statements: number; skipped: number; changes: number };
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
  {
    name: "db export",
    usage: "[--output file]",
    summary:
      "the project's database as SQL: schema, then rows as INSERTs (like wrangler d1 export)",
    args: [0, 0],
    flags: {
      output: {
        type: "string",
        alias: "o",
        value: "file",
        help: "write it to this file (default: stdout)",
      },
    },
    async run(args) {
      const api = platform(args);
      const output = stringFlag(args, "output");
      const wait = output ? spinner("exporting the database") : { stop() {} };
      const res = await api.send("GET", "/database/export").finally(() => wait.stop());
      if (!res.ok) throw await api.failure(res, undefined, "/database/export");
      const body = Readable.fromWeb(res.body as WebStream<Uint8Array>);
      if (!output) {
        await pipeline(body, process.stdout, { end: false });
        return;
      }
      // Written beside the target and renamed at the end: a failed download leaves no half file.
      const partial = path.join(path.dirname(output), `.${path.basename(output)}.partial`);
      try {
        await pipeline(body, fs.createWriteStream(partial));
        fs.renameSync(partial, output);
      } catch (e) {
        fs.rmSync(partial, { force: true });
        throw new CliError(`cannot write ${output}: ${(e as Error).message}`);
      }
      err.line(`wrote ${size(fs.statSync(output).size)} of SQL to ${output}`);
    },
  },
  {
    name: "db import",
    usage: "<file> [--json]",
    summary: "run a SQL file (such as db export's) in one transaction: all of it or nothing",
    args: [1, 1],
    flags: jsonFlag,
    async run(args) {
      const file = args.positionals[0];
      const bytes = readUserBytes(file, "SQL file");
      const api = platform(args);
      const res = await upload(
        api,
        "/database/import",
        bytes,
        "application/sql",
        uploadProgress(path.basename(file), bytes.length),
      );
      const wait = spinner("running the import in one transaction");
      let text: string;
      try {
        if (!res.ok) throw await api.failure(res, undefined, "/database/import");
        text = await res.text();
      } finally {
        wait.stop();
      }
      let body: ImportAnswer;
      try {
        body = JSON.parse(text) as ImportAnswer;
      } catch {
        throw new CliError(`unexpected answer from ${api.base}: HTTP ${res.status}, not JSON`);
      }
      if (args.flags.json) return out.json(body);
      const { statements, skipped, changes } = body.data;
      const left = skipped
        ? ` (${skipped} BEGIN/COMMIT left out: the import is one transaction)`
        : "";
      out.line(
        `imported ${file}: ${statements} statement${statements === 1 ? "" : "s"} run, ` +
          `${changes} row${changes === 1 ? "" : "s"} changed${left}`,
      );
    },
  },
];
