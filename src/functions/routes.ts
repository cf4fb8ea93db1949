import { Hono } from "hono";
import type { PlatformEnv } from "../http/app.js";
import { jsonBody, parse, unwrap } from "../http/validate.js";
import { FunctionCreate, FunctionUpdate } from "./schema.js";
import type { FunctionService } from "./service.js";

/** /platform/v1/functions: list, create, get, update, delete, deploy. */
export function functionRoutes(functions: FunctionService) {
  const app = new Hono<PlatformEnv>();
  app.get("/", async (c) => {
    const rows = await functions.list(c.get("projectId"));
    return c.json({
      data: rows.map((r) => functions.render(r, false)),
      meta: { total: rows.length },
    });
  });
  app.post("/", async (c) => {
    const input = parse(FunctionCreate, unwrap(await jsonBody(c.req.raw), "function"));
    return c.json(
      { data: functions.render(await functions.create(c.get("projectId"), input)) },
      201,
    );
  });
  app.get("/:id", async (c) => {
    return c.json({
      data: functions.render(await functions.get(c.get("projectId"), c.req.param("id"))),
    });
  });
  app.patch("/:id", async (c) => {
    const input = parse(FunctionUpdate, unwrap(await jsonBody(c.req.raw), "function"));
    return c.json({
      data: functions.render(await functions.update(c.get("projectId"), c.req.param("id"), input)),
    });
  });
  app.delete("/:id", async (c) => {
    await functions.remove(c.get("projectId"), c.req.param("id"));
    return c.body(null, 204);
  });
  app.get("/:id/deployed_code", async (c) => {
    return c.json({
      data: await functions.deployedCode(c.get("projectId"), c.req.param("id")),
    });
  });
  app.post("/:id/deploy", async (c) => {
    const row = await functions.deploy(c.get("projectId"), c.req.param("id"));
    return c.json({ message: "Deployment started", function_id: row.id, status: row.status }, 202);
  });
  return app;
}
