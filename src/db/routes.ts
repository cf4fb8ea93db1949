import { Hono } from "hono";
import { z } from "zod";
import type { PlatformEnv } from "../http/app.js";
import { AppError } from "../http/errors.js";
import { jsonBody, parse } from "../http/validate.js";
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

/** /platform/v1/database/query and /platform/v1/database_tables: the project's database. */
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
  return app;
}
