import { z } from "zod";
import { DbError, type DbExecutor } from "./executor.js";

// What env.DB inside workerd may ask (src/runtime/worker/loaded/d1.js through the supervisor's
// DbBinding): `POST /__wb/db/query` with D1 queries to run in one transaction. Checked
// strictly: the body comes from the user's isolate.
const D1Value = z.union([z.number(), z.string(), z.null(), z.array(z.number())]);

/** What loaded/d1.js sends through DbBinding: queries for one transaction. */
const D1Request = z.strictObject({
  queries: z.array(z.strictObject({ sql: z.string(), params: z.array(D1Value).nullish() })),
  bookmark: z.string().nullish(),
});

let lastMs = 0;
let sequence = 0;

/**
 * A D1 bookmark: ordered like D1's (compared as strings). There are no replicas, so it only
 * has to grow; it is made from the host's clock and a counter.
 */
function bookmark(): string {
  const ms = Date.now();
  if (ms > lastMs) [lastMs, sequence] = [ms, 0];
  else sequence++;
  const hex = lastMs.toString(16).padStart(16, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8)}-${sequence.toString(16).padStart(8, "0")}-${"0".repeat(32)}`;
}

export interface DbBindingOptions {
  maxRequestBytes: number;
  /** A statement's time limit when the function's is unknown, and the most it may ask. */
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
}

/**
 * The host side of DbBinding (`POST /__wb/db/query` on the internal server): answers
 * `{results, bookmark}`, or 400 `{error}` with D1's sentence for the shim to prefix.
 */
export function dbBindingHandler(executor: DbExecutor, options: DbBindingOptions) {
  return async (projectId: string, op: string, request: Request): Promise<Response> => {
    const refuse = (error: string) => Response.json({ error }, { status: 400 });
    if (op !== "query") return refuse(`unknown database operation "${op}"`);
    if (Number(request.headers.get("content-length") ?? 0) > options.maxRequestBytes)
      return refuse(`the request is larger than ${options.maxRequestBytes} bytes`);
    let body: unknown;
    try {
      body = await request.json();
    } catch {
      return refuse("the request is not valid JSON");
    }
    const parsed = D1Request.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return refuse(`invalid ${issue.path.join(".")}: ${issue.message}`);
    }
    const asked = Number(request.headers.get("x-workerbase-timeout-ms"));
    const timeoutMs = asked > 0 ? Math.min(asked, options.maxTimeoutMs) : options.defaultTimeoutMs;
    try {
      const results = await executor.query(projectId, parsed.data.queries, timeoutMs);
      return Response.json({ results, bookmark: bookmark() });
    } catch (err) {
      if (err instanceof DbError) return refuse(err.message);
      throw err;
    }
  };
}
