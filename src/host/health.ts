import { Hono } from "hono";
import { AppError } from "../http/errors.js";
import type { KeyGuard } from "../http/keyguard.js";
import { isAdmin, presentedAdminKey } from "../projects/routes.js";

export interface HealthDeps {
  /** This host's id (kept in the data dir). */
  hostId: string;
  store: "sqlite" | "postgres";
  healthy: () => boolean;
  /** Null while the store answers; else why not (said only to the operator). */
  storeProblem: () => Promise<string | null>;
  /** What only the operator sees: runtime and database processes, their pids and memory. */
  details: () => Record<string, unknown>;
  /** The Prometheus text of /metrics. */
  metrics: () => string;
  adminKey: string | undefined;
  /** The address the host listens on: beyond loopback, /metrics needs the admin key. */
  listenHost: string;
  guard: KeyGuard;
}

/** True for an address only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * `GET /healthz` and `GET /metrics`. Anyone may ask whether the host is up
 * (`{ok, host, store}`); process details (pids, memory) need the admin key (a wrong one is a
 * 401), and so does /metrics when the host listens beyond loopback.
 */
export function healthRoutes(deps: HealthDeps) {
  const app = new Hono();
  app.get("/healthz", async (c) => {
    const problem = await deps.storeProblem();
    const ok = deps.healthy() && problem === null;
    const summary = {
      ok,
      host: deps.hostId,
      store: deps.store,
      ...(problem === null ? {} : { error: "The platform's database cannot be reached" }),
    };
    if (deps.adminKey === undefined || presentedAdminKey(c) === undefined)
      return c.json(summary, ok ? 200 : 503);
    if (!(await isAdmin(c, deps.adminKey, deps.guard))) throw new AppError("ADMIN_UNAUTHORIZED");
    return c.json(
      { ...summary, ...(problem === null ? {} : { store_error: problem }), ...deps.details() },
      ok ? 200 : 503,
    );
  });
  app.get("/metrics", async (c) => {
    if (!isLoopback(deps.listenHost)) {
      if (deps.adminKey === undefined)
        throw new AppError(
          "NOT_FOUND",
          `/metrics is off while the host listens on ${deps.listenHost} without WORKERBASE_ADMIN_KEY; set it and send it as X-Admin-Key or a Bearer token`,
        );
      if (!(await isAdmin(c, deps.adminKey, deps.guard))) throw new AppError("ADMIN_UNAUTHORIZED");
    }
    return c.text(deps.metrics(), 200, { "content-type": "text/plain; version=0.0.4" });
  });
  return app;
}
