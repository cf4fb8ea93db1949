import { Hono } from "hono";
import { z } from "zod";
import type { PlatformEnv } from "../http/app.js";
import { AppError } from "../http/errors.js";
import { jsonBody, parse } from "../http/validate.js";
import { mib } from "./dump.js";
import { DbError, type DbExecutor } from "./executor.js";
import type { RawResult } from "./service.js";

/** The data API's body. Booleans bind as 1/0 and arrays of bytes as blobs, as in env.DB. */
const DataQuery = z.strictObject({
  sql: z.string().min(1),
  params: z
    .array(
      z.union([
        z.string(),
        z.number(),
        z.boolean(),
        z.null(),
        z.array(z.number().int().min(0).max(255)),
      ]),
    )
    .default([]),
});

function objects(result: RawResult) {
  return {
    results: result.rows.map((row) =>
      Object.fromEntries(row.map((cell, i) => [result.columns[i], cell])),
    ),
    meta: result.meta,
  };
}

function tooLarge(request: Request, maxBytes: number): boolean {
  return Number(request.headers.get("content-length") ?? 0) > maxBytes;
}

export interface DbRoutesOptions {
  maxRequestBytes: number;
  /** Time limit of one request's statements. */
  timeoutMs: number;
  /** Largest SQL file an import takes, and largest export (default 100 MiB). */
  maxTransferBytes?: number;
  /** Time limit of one export or import (default 300 s). */
  transferTimeoutMs?: number;
}

/**
 * Export and import move a whole database, so they get their own limits beside the data
 * API's: the same size both ways (every export imports back), and far more time.
 */
export const transferDefaults = {
  maxTransferBytes: 100 * 1024 * 1024,
  transferTimeoutMs: 300_000,
};

/** An import's body: SQL text sent as application/sql, at most `maxBytes` of UTF-8. */
async function sqlBody(request: Request, maxBytes: number): Promise<string> {
  const type = request.headers.get("content-type") ?? "";
  const [media, ...params] = type.split(";").map((p) => p.trim().toLowerCase());
  if (media !== "application/sql")
    throw new AppError(
      "INVALID_INPUT",
      `An import is SQL text sent with Content-Type: application/sql; this request's body is ${type ? `"${type}"` : "of no type"}`,
    );
  const charset = params.find((p) => p.startsWith("charset="))?.slice("charset=".length);
  if (charset && !/^"?utf-?8"?$/.test(charset))
    throw new AppError("INVALID_INPUT", `An import is UTF-8 text, not charset=${charset}`);
  const tooBig = () =>
    new AppError(
      "TOO_LARGE",
      `The SQL file is larger than ${mib(maxBytes)}, the most one import takes; split it into several files`,
    );
  if (tooLarge(request, maxBytes)) throw tooBig();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      size += chunk.byteLength;
      if (size > maxBytes) throw tooBig();
      chunks.push(chunk);
    }
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new AppError("INVALID_INPUT", "The SQL file is not UTF-8 text");
  }
}

/** A failed export or import as the caller reads it; an import that fails changes nothing. */
function transferFailure(err: unknown, what: "export" | "import", timeoutMs: number): never {
  if (!(err instanceof DbError)) throw err;
  const nothing = what === "import" ? "; nothing was imported" : "";
  if (err.kind === "timeout")
    throw new AppError(
      "INVALID_INPUT",
      `The ${what} ran longer than ${timeoutMs / 1000} s and was stopped${nothing}`,
    );
  if (err.kind === "sql") throw new AppError("INVALID_INPUT", err.message);
  throw new AppError("UNAVAILABLE", `${err.message}${nothing}`);
}

function rethrow(err: unknown, timeoutMs: number): never {
  if (!(err instanceof DbError)) throw err;
  if (err.kind === "timeout")
    throw new AppError(
      "INVALID_INPUT",
      `The query ran longer than ${timeoutMs / 1000} s and was stopped`,
    );
  if (err.kind === "sql") throw new AppError("INVALID_INPUT", err.message);
  throw new AppError("UNAVAILABLE", err.message);
}

/**
 * /platform/v1/database/query, /database_tables, /database/export and /database/import: the
 * project's database.
 */
export function databaseRoutes(executor: DbExecutor, options: DbRoutesOptions) {
  const app = new Hono<PlatformEnv>();
  const timeoutMs = options.timeoutMs;
  app.post("/database/query", async (c) => {
    if (tooLarge(c.req.raw, options.maxRequestBytes))
      throw new AppError(
        "TOO_LARGE",
        `The request body is larger than ${options.maxRequestBytes} bytes`,
      );
    const input = parse(DataQuery, await jsonBody(c.req.raw));
    const params = input.params.map((v) => (typeof v === "boolean" ? Number(v) : v));
    const outcome = await executor
      .statements(c.get("projectId"), input.sql, params, timeoutMs)
      .catch((err) => rethrow(err, timeoutMs));
    const several = outcome.statements > 1;
    if (outcome.failed) {
      const { statement, message } = outcome.failed;
      throw new AppError(
        "INVALID_INPUT",
        several ? `Statement ${statement} failed: ${message}` : message,
        several ? { statement, applied: outcome.results.length } : undefined,
      );
    }
    const rendered = outcome.results.map(objects);
    return c.json({ data: several ? rendered : rendered[0] });
  });
  app.get("/database_tables", async (c) => {
    const tables = await executor
      .tables(c.get("projectId"), timeoutMs)
      .catch((err) => rethrow(err, timeoutMs));
    return c.json({ data: tables });
  });
  const maxTransferBytes = options.maxTransferBytes ?? transferDefaults.maxTransferBytes;
  const transferTimeoutMs = options.transferTimeoutMs ?? transferDefaults.transferTimeoutMs;
  app.get("/database/export", async (c) => {
    const exported = await executor
      .exportSql(c.get("projectId"), maxTransferBytes, transferTimeoutMs)
      .catch((err) => transferFailure(err, "export", transferTimeoutMs));
    return c.body(exported.sql, 200, { "content-type": "application/sql; charset=utf-8" });
  });
  app.post("/database/import", async (c) => {
    const sql = await sqlBody(c.req.raw, maxTransferBytes);
    const outcome = await executor
      .importSql(c.get("projectId"), sql, transferTimeoutMs)
      .catch((err) => transferFailure(err, "import", transferTimeoutMs));
    const { failed, ...done } = outcome;
    if (!failed) return c.json({ data: done });
    const message = failed.message.replace(/\.$/, "");
    throw new AppError(
      "INVALID_INPUT",
      failed.statement === undefined
        ? `${message}; nothing was imported`
        : `Statement ${failed.statement} (${failed.sql}) failed: ${message}; nothing was imported`,
      failed,
    );
  });
  return app;
}
