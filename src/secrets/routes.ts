import { Hono } from "hono";
import type { PlatformEnv } from "../http/app.js";
import { AppError } from "../http/errors.js";
import { jsonBody, parse, unwrap } from "../http/validate.js";
import { SecretInput, type SecretService } from "./service.js";

const namePattern = /^[A-Z][A-Z0-9_]*$/;

function secretName(name: string): string {
  if (!namePattern.test(name)) throw new AppError("NOT_FOUND", "Secret not found");
  return name;
}

/** Function secrets under /functions/{id}/secrets and project secrets under /secrets. */
export function secretRoutes(secrets: SecretService) {
  const app = new Hono<PlatformEnv>();
  app.get("/functions/:id/secrets", async (c) =>
    c.json({ data: await secrets.listForFunction(c.get("projectId"), c.req.param("id")) }),
  );
  app.post("/functions/:id/secrets", async (c) => {
    const input = parse(SecretInput, unwrap(await jsonBody(c.req.raw), "secret"));
    return c.json({ data: await secrets.set(c.get("projectId"), c.req.param("id"), input) }, 201);
  });
  app.delete("/functions/:id/secrets/:name", async (c) => {
    await secrets.remove(c.get("projectId"), c.req.param("id"), secretName(c.req.param("name")));
    return c.body(null, 204);
  });
  app.get("/secrets", async (c) =>
    c.json({ data: await secrets.listForProject(c.get("projectId")) }),
  );
  app.post("/secrets", async (c) => {
    const input = parse(SecretInput, unwrap(await jsonBody(c.req.raw), "secret"));
    return c.json({ data: await secrets.set(c.get("projectId"), null, input) }, 201);
  });
  app.delete("/secrets/:name", async (c) => {
    await secrets.remove(c.get("projectId"), null, secretName(c.req.param("name")));
    return c.body(null, 204);
  });
  return app;
}
