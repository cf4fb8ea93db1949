import { Hono } from "hono";
import { z } from "zod";
import type { PlatformEnv } from "../http/app.js";
import { limitParam, parse } from "../http/validate.js";
import type { FunctionService } from "../functions/service.js";
import type { InvocationService } from "./service.js";

const Status = z.enum(["success", "failed"]).optional();

/** GET /platform/v1/functions/{id}/invocations: newest first. */
export function invocationRoutes(functions: FunctionService, invocations: InvocationService) {
  const app = new Hono<PlatformEnv>();
  app.get("/:id/invocations", async (c) => {
    const fn = await functions.get(c.get("projectId"), c.req.param("id"));
    const status = parse(z.object({ status: Status }), { status: c.req.query("status") }).status;
    const limit = limitParam(c.req.query("limit"), 20, 100);
    return c.json({ data: await invocations.list(fn.id, status, limit) });
  });
  return app;
}
