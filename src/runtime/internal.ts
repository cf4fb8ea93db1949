import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { Hono } from "hono";

/** What the supervisors may ask of the host; each handler gets a web Request. */
export interface InternalHandlers {
  code: (deploymentId: string) => Promise<unknown | null>;
  kv: (projectId: string, op: string, request: Request) => Promise<Response>;
  db: (projectId: string, op: string, request: Request) => Promise<Response>;
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
  app.post("/__wb/kv/:op", (c) =>
    handlers.kv(c.req.header("x-workerbase-project") ?? "", c.req.param("op"), c.req.raw),
  );
  app.post("/__wb/db/:op", (c) =>
    handlers.db(c.req.header("x-workerbase-project") ?? "", c.req.param("op"), c.req.raw),
  );
  app.onError((err, c) => {
    log(`internal request failed: ${(err as Error).stack}`);
    return c.text("internal error", 500);
  });
  const server = http.createServer(getRequestListener(app.fetch));
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
