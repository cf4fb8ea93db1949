import { Hono, type Context, type Next } from "hono";
import { AppError, failureLine } from "./errors.js";
import { isStoreUnavailable } from "../store/db.js";

/** What a request hears while the host's database cannot be reached. */
export const storeUnavailableMessage =
  "The platform's database cannot be reached right now; nothing was changed. Try again in a few seconds";
import { clientOf, type KeyGuard } from "./keyguard.js";
import type { RateLimiter } from "./ratelimit.js";
import type { ProjectService } from "../projects/service.js";

export type PlatformEnv = { Variables: { projectId: string; keyId: string } };

/**
 * Marks every answer `X-Content-Type-Options: nosniff`, errors and not-found included, so no
 * browser takes an API answer (a stored value, an echoed body) for HTML or script.
 */
export async function noSniff(c: Context, next: Next): Promise<void> {
  await next();
  try {
    c.res.headers.set("x-content-type-options", "nosniff");
  } catch {
    // Immutable headers (a Response passed through as is): copy it.
    c.res = new Response(c.res.body, c.res);
    c.res.headers.set("x-content-type-options", "nosniff");
  }
}

/**
 * Renders known errors as `{"error"}` with their status; anything else is a logged 500.
 * Every answer of `app` (and of the apps routed under it) carries `nosniff`.
 */
export function withErrors<T extends Hono<any>>(app: T, log: (line: string) => void): T {
  app.use("*", noSniff);
  app.onError((err, c) => {
    if (err instanceof AppError) {
      for (const [k, v] of Object.entries(err.headers ?? {})) c.header(k, v);
      return c.json(err.body(), err.status as 400);
    }
    if (isStoreUnavailable(err)) {
      log(
        `${c.req.method} ${new URL(c.req.url).pathname}: the store is unreachable: ${err.message}`,
      );
      c.header("retry-after", "2");
      return c.json({ error: storeUnavailableMessage }, 503);
    }
    log(failureLine(`${c.req.method} ${new URL(c.req.url).pathname}`, err));
    return c.json({ error: "Internal server error" }, 500);
  });
  app.notFound((c) => c.json({ error: "Not found" }, 404));
  return app;
}

/**
 * Resolves `X-API-Key` to its project; every /platform/v1 route sees only that project. Wrong
 * keys count against the client's address (`guard`).
 */
export function requireKey(projects: ProjectService, limiter: RateLimiter, guard: KeyGuard) {
  return async (c: any, next: () => Promise<void>) => {
    const identity = await guard.verify(clientOf(c), c.req.header("x-api-key"), (key) =>
      projects.authenticate(key),
    );
    if (!identity) throw new AppError("UNAUTHORIZED");
    const limited = limiter.check(identity.keyId);
    if (limited) throw new AppError("RATE_LIMITED", limited.message, undefined, limited.headers);
    c.set("projectId", identity.projectId);
    c.set("keyId", identity.keyId);
    await next();
  };
}
