import { Hono } from "hono";
import type { PlatformEnv } from "../http/app.js";
import { AppError } from "../http/errors.js";
import { jsonBody, limitParam, parse, parseJson, unwrap } from "../http/validate.js";
import { DeployRequest, FunctionCreate, FunctionUpdate, RollbackRequest } from "./schema.js";
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
    // The body is optional: `{"message": "..."}` to keep with the version.
    const text = await c.req.raw.text();
    const input = text.trim() === "" ? {} : parse(DeployRequest, parseJson(text));
    const row = await functions.deploy(c.get("projectId"), c.req.param("id"), input.message);
    return c.json({ message: "Deployment started", function_id: row.id, status: row.status }, 202);
  });
  app.get("/:id/versions", async (c) => {
    const limit = limitParam(c.req.query("limit"), 20, 100);
    const after = c.req.query("after");
    const page = await functions.versions(
      c.get("projectId"),
      c.req.param("id"),
      limit,
      after === undefined ? undefined : versionParam(after, "after"),
    );
    return c.json({ data: page.data, meta: { next_cursor: page.nextCursor } });
  });
  app.get("/:id/versions/:version", async (c) => {
    const version = versionParam(c.req.param("version"), "version");
    return c.json({
      data: await functions.version(c.get("projectId"), c.req.param("id"), version),
    });
  });
  app.post("/:id/rollback", async (c) => {
    const input = parse(RollbackRequest, await jsonBody(c.req.raw));
    const row = await functions.rollback(c.get("projectId"), c.req.param("id"), input.version);
    return c.json({ data: functions.render(row) });
  });
  return app;
}

/** A version number in a path or query: a 400 unless a whole number from 1 up. */
function versionParam(value: string, field: string): number {
  if (!/^[1-9]\d{0,9}$/.test(value))
    throw new AppError("INVALID_INPUT", `Invalid ${field}: must be a version number from 1 up`, [
      { field, message: "must be a version number from 1 up" },
    ]);
  return Number(value);
}
