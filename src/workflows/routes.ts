import { Hono } from "hono";
import { getConnInfo } from "@hono/node-server/conninfo";
import { z } from "zod";
import type { PlatformEnv } from "../http/app.js";
import { jsonBody, limitParam, parse, parseJson, unwrap } from "../http/validate.js";
import { ExecutionCreate, ResumeInput, WorkflowCreate, WorkflowUpdate } from "./schema.js";
import type { WorkflowService } from "./service.js";

const Status = z.object({ status: z.enum(["running", "waiting", "ended", "failed"]).optional() });

/** The client's address, when the server knows it. */
function clientIp(c: Parameters<typeof getConnInfo>[0]): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null;
  }
}

/** A JSON body that may be left out (an execution with empty vars and context). */
async function optionalJson(request: Request): Promise<unknown> {
  const text = await request.text();
  if (text.trim() === "") return { execution: {} };
  return parseJson(text);
}

/** /platform/v1/workflows and /platform/v1/workflow_executions (§5.1). */
export function workflowRoutes(workflows: WorkflowService) {
  const app = new Hono<PlatformEnv>();

  app.get("/workflows", async (c) => {
    const rows = await workflows.list(c.get("projectId"));
    return c.json({ data: rows.map((r) => workflows.render(r)), meta: { total: rows.length } });
  });
  app.post("/workflows", async (c) => {
    const input = parse(WorkflowCreate, unwrap(await jsonBody(c.req.raw), "workflow"));
    return c.json(
      { data: workflows.render(await workflows.create(c.get("projectId"), input)) },
      201,
    );
  });
  app.get("/workflows/:id", async (c) => {
    return c.json({
      data: workflows.render(await workflows.get(c.get("projectId"), c.req.param("id"))),
    });
  });
  app.patch("/workflows/:id", async (c) => {
    const input = parse(WorkflowUpdate, unwrap(await jsonBody(c.req.raw), "workflow"));
    const row = await workflows.update(c.get("projectId"), c.req.param("id"), input);
    return c.json({ data: workflows.render(row) });
  });
  app.delete("/workflows/:id", async (c) => {
    await workflows.remove(c.get("projectId"), c.req.param("id"));
    return c.body(null, 204);
  });

  app.post("/workflows/:id/executions", async (c) => {
    const input = parse(ExecutionCreate, unwrap(await optionalJson(c.req.raw), "execution"));
    const execution = await workflows.startExecution(c.get("projectId"), c.req.param("id"), input, {
      ip: clientIp(c),
    });
    return c.json({ data: { id: execution.id, status: execution.status } }, 202);
  });
  app.get("/workflows/:id/executions", async (c) => {
    const { status } = parse(Status, { status: c.req.query("status") });
    const limit = limitParam(c.req.query("limit"), 20, 100);
    const rows = await workflows.listExecutions(
      c.get("projectId"),
      c.req.param("id"),
      status,
      limit,
    );
    return c.json({ data: rows.map((r) => workflows.renderExecution(r)) });
  });

  app.get("/workflow_executions/:id", async (c) => {
    const row = await workflows.getExecution(c.get("projectId"), c.req.param("id"));
    return c.json({ data: workflows.renderExecution(row) });
  });
  app.get("/workflow_executions/:id/events", async (c) => {
    const limit = limitParam(c.req.query("limit"), 50, 100);
    const page = await workflows.events(
      c.get("projectId"),
      c.req.param("id"),
      c.req.query("after"),
      limit,
    );
    return c.json({
      data: page.events.map((e) => workflows.renderEvent(e)),
      meta: { next_cursor: page.nextCursor },
    });
  });
  app.post("/workflow_executions/:id/resume", async (c) => {
    const { input } = parse(ResumeInput, await jsonBody(c.req.raw));
    return c.json(await workflows.resume(c.get("projectId"), c.req.param("id"), input), 202);
  });
  return app;
}
