import crypto from "node:crypto";
import { Hono, type Context } from "hono";
import { z } from "zod";
import { AppError } from "../http/errors.js";
import { clientOf, type KeyGuard } from "../http/keyguard.js";
import { jsonBody, parse, unwrap, isUuid } from "../http/validate.js";
import type { ProjectService } from "./service.js";

const ProjectInput = z.strictObject({ name: z.string().trim().min(1).max(100) });

function safeEqual(a: string, b: string): boolean {
  const x = crypto.createHash("sha256").update(a).digest();
  const y = crypto.createHash("sha256").update(b).digest();
  return crypto.timingSafeEqual(x, y);
}

/** The admin key a request presents: `X-Admin-Key`, else an `Authorization: Bearer` token. */
export function presentedAdminKey(c: Context): string | undefined {
  const bearer = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
  return c.req.header("x-admin-key") ?? bearer;
}

/**
 * True when the request carries the admin key (`X-Admin-Key`, or `Authorization: Bearer` for
 * scrapers that send only that); a wrong one counts against the client's address, and an
 * address past the bound gets 429.
 */
export async function isAdmin(c: Context, adminKey: string, guard: KeyGuard): Promise<boolean> {
  const ok = await guard.verify(clientOf(c), presentedAdminKey(c), (key) =>
    safeEqual(key, adminKey) ? true : null,
  );
  return ok === true;
}

/** The operator API at /admin/v1, present only when an admin key is configured. */
export function adminRoutes(
  projects: ProjectService,
  adminKey: string | undefined,
  guard: KeyGuard,
) {
  const app = new Hono();
  app.use("*", async (c, next) => {
    if (!adminKey)
      throw new AppError("NOT_FOUND", "The admin API is disabled; set WORKERBASE_ADMIN_KEY");
    if (!(await isAdmin(c, adminKey, guard))) throw new AppError("ADMIN_UNAUTHORIZED");
    await next();
  });
  app.post("/projects", async (c) => {
    const input = parse(ProjectInput, unwrap(await jsonBody(c.req.raw), "project"));
    return c.json({ data: await projects.createProject(input.name) }, 201);
  });
  app.get("/projects", async (c) => c.json({ data: await projects.listProjects() }));
  app.get("/projects/:id/api_keys", async (c) => {
    const id = c.req.param("id");
    if (!isUuid(id)) throw new AppError("NOT_FOUND", "Project not found");
    return c.json({ data: await projects.listKeys(id) });
  });
  app.post("/projects/:id/api_keys", async (c) => {
    const id = c.req.param("id");
    if (!isUuid(id)) throw new AppError("NOT_FOUND", "Project not found");
    await projects.requireProject(id);
    const key = await projects.createKey(id);
    return c.json({ data: { ...key, project_id: id } }, 201);
  });
  app.delete("/api_keys/:id", async (c) => {
    const id = c.req.param("id");
    if (!isUuid(id)) throw new AppError("NOT_FOUND", "API key not found");
    await projects.deleteKey(id);
    return c.body(null, 204);
  });
  return app;
}
