import { z } from "zod";
import { headerIssues } from "./headers.js";

/** Every event a subscription may ask for (CONTRACT.md 6.2). */
export const eventNames = [
  "whatsapp.message.received",
  "whatsapp.conversation.created",
  "workflow.execution.ended",
  "workflow.execution.failed",
] as const;

export type EventName = (typeof eventNames)[number];

/** Headers a subscription may not set: ours (`X-Webhook-*`, the idempotency key) and framing. */
export function isReservedHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return (
    lower.startsWith("x-webhook-") ||
    [
      "x-idempotency-key",
      "content-type",
      "content-length",
      "host",
      "connection",
      "keep-alive",
      "transfer-encoding",
      "te",
      "trailer",
      "upgrade",
      "expect",
    ].includes(lower)
  );
}

const Events = z
  .array(
    z.string().refine((e) => (eventNames as readonly string[]).includes(e), {
      message: `must be one of: ${eventNames.join(", ")}`,
    }),
  )
  .min(1, "subscribe to at least one event")
  .max(eventNames.length * 2)
  .transform((list) => [...new Set(list)] as EventName[]);

const Headers = z.record(z.string(), z.string().max(2048)).superRefine((headers, ctx) => {
  const names = Object.keys(headers);
  if (names.length > 32) ctx.addIssue({ code: "custom", message: "must have at most 32 headers" });
  for (const { name, message } of headerIssues(headers))
    ctx.addIssue({ code: "custom", path: [name], message });
  const seen = new Set<string>();
  for (const name of names) {
    if (isReservedHeader(name)) {
      ctx.addIssue({
        code: "custom",
        path: [name],
        message: "this header is set by Workerbase and cannot be overridden",
      });
    }
    if (seen.has(name.toLowerCase()))
      ctx.addIssue({ code: "custom", path: [name], message: "given twice" });
    seen.add(name.toLowerCase());
  }
});

const SecretKey = z
  .string()
  .min(8, "must be at least 8 characters")
  .max(256)
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces");

const Url = z.string().max(2048);
const FunctionRef = z.string().min(1).max(128);

const fields = {
  url: Url.optional(),
  function_id: FunctionRef.optional(),
  events: Events,
  secret_key: SecretKey.optional(),
  headers: Headers.optional(),
  active: z.boolean().optional(),
};

/** `{"webhook": {...}}` of a create: a URL or a function of the project, and events. */
export const WebhookCreate = z
  .strictObject(fields)
  .refine((w) => (w.url === undefined) !== (w.function_id === undefined), {
    message: "give either url or function_id",
    path: ["url"],
  });
export type WebhookCreate = z.infer<typeof WebhookCreate>;

/** `{"webhook": {...}}` of an update: any field; a new url or function_id replaces the target. */
export const WebhookUpdate = z
  .strictObject({ ...fields, events: Events.optional() })
  .refine((w) => w.url === undefined || w.function_id === undefined, {
    message: "give either url or function_id, not both",
    path: ["url"],
  });
export type WebhookUpdate = z.infer<typeof WebhookUpdate>;

/** `GET /webhook_deliveries` statuses. */
export const deliveryStatuses = ["pending", "delivered", "failed"] as const;
