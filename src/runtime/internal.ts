import crypto from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { Hono } from "hono";

/** What the supervisors may ask of the host; each handler gets a web Request, except `kv`. */
export interface InternalHandlers {
  code: (deploymentId: string) => Promise<unknown | null>;
  /**
   * KV operations sit on a function's hot path, so they skip Hono and its web Request and
   * Response objects (about 0.1 ms of host CPU per call): the handler answers on `res`.
   */
  kv: (projectId: string, op: string, req: IncomingMessage, res: ServerResponse) => Promise<void>;
  db: (projectId: string, op: string, request: Request) => Promise<Response>;
  /** Console lines written after an invocation's answer (by `ctx.waitUntil` work). */
  late: (recordId: string, lines: unknown) => boolean;
}

function tokenMatches(given: string | undefined, token: string): boolean {
  if (!given || given.length !== token.length) return false;
  return crypto.timingSafeEqual(Buffer.from(given), Buffer.from(token));
}

/**
 * The host's bindings service: a loopback-only HTTP server that workerd's supervisors call
 * for code, KV and database operations. Every request must carry the pool's token.
 */
export async function startInternalServer(
  handlers: InternalHandlers,
  getToken: () => string,
  log: (line: string) => void,
): Promise<{ port: number; close: () => Promise<void> }> {
  const app = new Hono();
  app.use("*", async (c, next) => {
    if (!tokenMatches(c.req.header("x-workerbase-token"), getToken()))
      return c.text("forbidden", 403);
    await next();
  });
  app.get("/__wb/code/:id", async (c) => {
    const code = await handlers.code(c.req.param("id"));
    return code ? c.json(code) : c.text("unknown deployment", 404);
  });
  app.post("/__wb/db/:op", (c) =>
    handlers.db(c.req.header("x-workerbase-project") ?? "", c.req.param("op"), c.req.raw),
  );
  app.post("/__wb/late/:id", async (c) => {
    let lines: unknown;
    try {
      lines = JSON.parse(await c.req.text());
    } catch {
      return c.text("not JSON", 400);
    }
    return handlers.late(c.req.param("id"), lines) ? c.body(null, 204) : c.text("unknown", 404);
  });
  app.onError((err, c) => {
    log(`internal request failed: ${(err as Error).stack}`);
    return c.text("internal error", 500);
  });
  const listener = getRequestListener(app.fetch);
  const kvPrefix = "/__wb/kv/";
  const server = http.createServer((req, res) => {
    if (req.method !== "POST" || !req.url?.startsWith(kvPrefix)) return void listener(req, res);
    if (!tokenMatches(req.headers["x-workerbase-token"] as string | undefined, getToken())) {
      return void res.writeHead(403).end("forbidden");
    }
    const project = (req.headers["x-workerbase-project"] as string | undefined) ?? "";
    handlers.kv(project, req.url.slice(kvPrefix.length), req, res).catch((err) => {
      log(`internal request failed: ${(err as Error).stack}`);
      if (res.headersSent) res.destroy();
      else res.writeHead(500).end("internal error");
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
