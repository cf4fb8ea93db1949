import { Hono } from "hono";
import type { PlatformEnv } from "../http/app.js";
import { AppError } from "../http/errors.js";
import { jsonBody, limitParam, parse, unwrap } from "../http/validate.js";
import { WebhookCreate, WebhookUpdate } from "./schema.js";
import type { WebhookService } from "./service.js";
import { PhoneNumberInput, SimulateInput, type WhatsAppService } from "./whatsapp.js";

/** Meta's webhook bodies are small; anything past this is refused before it is read whole. */
const maxMetaBodyBytes = 4 * 1024 * 1024;

async function readLimited(request: Request, max: number): Promise<Buffer> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > max)
    throw new AppError("TOO_LARGE", `The request body is larger than ${max} bytes`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      if (size > max)
        throw new AppError("TOO_LARGE", `The request body is larger than ${max} bytes`);
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks);
}

/** /platform/v1: webhook subscriptions, their deliveries, WhatsApp numbers and the simulator. */
export function webhookRoutes(webhooks: WebhookService, whatsapp: WhatsAppService) {
  const app = new Hono<PlatformEnv>();
  app.get("/webhooks", async (c) => {
    const rows = await webhooks.list(c.get("projectId"));
    return c.json({ data: rows.map((r) => webhooks.render(r)), meta: { total: rows.length } });
  });
  app.post("/webhooks", async (c) => {
    const input = parse(WebhookCreate, unwrap(await jsonBody(c.req.raw), "webhook"));
    const { row, secretKey } = await webhooks.create(c.get("projectId"), input);
    return c.json({ data: webhooks.render(row, secretKey) }, 201);
  });
  app.get("/webhooks/:id", async (c) =>
    c.json({ data: webhooks.render(await webhooks.get(c.get("projectId"), c.req.param("id"))) }),
  );
  app.patch("/webhooks/:id", async (c) => {
    const input = parse(WebhookUpdate, unwrap(await jsonBody(c.req.raw), "webhook"));
    const row = await webhooks.update(c.get("projectId"), c.req.param("id"), input);
    return c.json({ data: webhooks.render(row) });
  });
  app.delete("/webhooks/:id", async (c) => {
    await webhooks.remove(c.get("projectId"), c.req.param("id"));
    return c.body(null, 204);
  });
  app.post("/webhooks/:id/test", async (c) =>
    c.json({ data: await webhooks.test(c.get("projectId"), c.req.param("id")) }),
  );
  app.get("/webhook_deliveries", async (c) => {
    const q = c.req.query();
    return c.json(
      await webhooks.listDeliveries(c.get("projectId"), {
        webhook_id: q.webhook_id,
        status: q.status,
        after: q.after,
        limit: limitParam(q.limit, 50, 100),
      }),
    );
  });

  app.get("/whatsapp/phone_numbers", async (c) =>
    c.json({ data: await whatsapp.phoneNumbers(c.get("projectId")) }),
  );
  app.post("/whatsapp/phone_numbers", async (c) => {
    const input = parse(PhoneNumberInput, unwrap(await jsonBody(c.req.raw), "phone_number"));
    const { created, row } = await whatsapp.registerPhoneNumber(c.get("projectId"), input);
    return c.json({ data: row }, created ? 201 : 200);
  });
  app.delete("/whatsapp/phone_numbers/:id", async (c) => {
    await whatsapp.removePhoneNumber(c.get("projectId"), c.req.param("id"));
    return c.body(null, 204);
  });
  app.post("/whatsapp/simulate", async (c) => {
    const input = parse(SimulateInput, await jsonBody(c.req.raw));
    return c.json({ data: await whatsapp.simulate(c.get("projectId"), input) }, 202);
  });
  app.get("/whatsapp/conversations", async (c) =>
    c.json({
      data: await whatsapp.conversations(
        c.get("projectId"),
        limitParam(c.req.query("limit"), 50, 100),
      ),
    }),
  );
  app.get("/whatsapp/conversations/:id/messages", async (c) =>
    c.json({
      data: await whatsapp.messages(
        c.get("projectId"),
        c.req.param("id"),
        limitParam(c.req.query("limit"), 50, 100),
      ),
    }),
  );
  return app;
}

/** `/webhooks/whatsapp` at the server's root, where Meta calls: the challenge and inbound. */
export function metaRoutes(whatsapp: WhatsAppService) {
  const app = new Hono();
  app.get("/whatsapp", (c) => {
    const answer = whatsapp.challenge(
      c.req.query("hub.mode"),
      c.req.query("hub.verify_token"),
      c.req.query("hub.challenge"),
    );
    if (answer === null) return c.json({ error: "Verification failed" }, 403);
    return c.text(answer, 200);
  });
  app.post("/whatsapp", async (c) => {
    const raw = await readLimited(c.req.raw, maxMetaBodyBytes);
    const result = await whatsapp.receiveMeta(raw, c.req.header("x-hub-signature-256"));
    return c.json({ data: result }, 200);
  });
  return app;
}
