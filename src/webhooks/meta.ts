import crypto from "node:crypto";
import { AppError } from "../http/errors.js";

/** Meta's bare digits (or a number typed with `+`, spaces, dashes) as E.164; null if it is not one. */
export function toE164(raw: string): string | null {
  const text = raw.trim().replace(/[\s().-]/g, "");
  const digits = text.startsWith("+")
    ? text.slice(1)
    : text.startsWith("00")
      ? text.slice(2)
      : text;
  return /^[1-9][0-9]{2,14}$/.test(digits) ? `+${digits}` : null;
}

export const mediaTypes = new Set(["image", "video", "audio", "document", "sticker"]);

/** A text rendering of a Meta message object, whatever its type. */
export function contentOf(m: Record<string, any>): string {
  const type = String(m.type ?? "unknown");
  const part = m[type] ?? {};
  if (type === "text") return String(part.body ?? "");
  if (type === "interactive")
    return String(part.button_reply?.title ?? part.list_reply?.title ?? "[interactive]");
  if (type === "button") return String(part.text ?? "[button]");
  if (type === "reaction") return String(part.emoji ?? "[reaction]");
  if (type === "location")
    return [part.name, part.address].filter(Boolean).join(", ") || "[location]";
  if (mediaTypes.has(type)) return part.caption ? String(part.caption) : `[${type}]`;
  return `[${type}]`;
}

/** One inbound message, from Meta or the simulator. */
export interface Inbound {
  id: string;
  from: string;
  timestamp: string;
  type: string;
  /** The message object as Meta sent it. */
  raw: Record<string, unknown>;
  contactName: string | null;
  origin: "cloud_api" | "simulator";
}

/** Compares two secrets in constant time, whatever their lengths. */
export function safeEqual(a: string, b: string): boolean {
  const x = crypto.createHash("sha256").update(a).digest();
  const y = crypto.createHash("sha256").update(b).digest();
  return crypto.timingSafeEqual(x, y);
}

/** True when `header` is `sha256=` + the hex HMAC-SHA256 of the raw body with the app secret. */
export function verifySignature(
  appSecret: string,
  raw: Buffer,
  header: string | undefined,
): boolean {
  if (!header) return false;
  const expected = "sha256=" + crypto.createHmac("sha256", appSecret).update(raw).digest("hex");
  return safeEqual(header.trim().toLowerCase(), expected);
}

/**
 * The inbound messages of a Meta webhook body (`object: whatsapp_business_account`,
 * `entry[].changes[].value.messages[]`), grouped by the business phone number id they
 * reached. Anything else in it (status updates, other objects) is ignored; a body that is
 * not JSON is a 400.
 */
export function parseMetaPayload(raw: Buffer): { phoneNumberId: string; messages: Inbound[] }[] {
  let body: any;
  try {
    body = JSON.parse(raw.toString("utf8"));
  } catch {
    throw new AppError("BAD_JSON");
  }
  const batches: { phoneNumberId: string; messages: Inbound[] }[] = [];
  if (body?.object !== "whatsapp_business_account" || !Array.isArray(body.entry)) return batches;
  for (const entry of body.entry) {
    for (const change of Array.isArray(entry?.changes) ? entry.changes : []) {
      const value = change?.value;
      const pnid = value?.metadata?.phone_number_id;
      if (typeof pnid !== "string" && typeof pnid !== "number") continue;
      if (String(pnid).length === 0 || String(pnid).length > 64) continue;
      const names = new Map<string, string>();
      for (const c of Array.isArray(value.contacts) ? value.contacts : [])
        if (c?.wa_id && c?.profile?.name) names.set(String(c.wa_id), String(c.profile.name));
      const messages: Inbound[] = [];
      for (const m of Array.isArray(value.messages) ? value.messages : []) {
        if (typeof m?.id !== "string" || typeof m?.from !== "string") continue;
        if (m.id.length === 0 || m.id.length > 256 || !toE164(m.from)) continue;
        messages.push({
          id: m.id,
          from: m.from,
          timestamp: String(m.timestamp ?? Math.floor(Date.now() / 1000)).slice(0, 32),
          type: String(m.type ?? "unknown").slice(0, 32),
          raw: m,
          contactName: names.get(m.from)?.slice(0, 256) ?? null,
          origin: "cloud_api",
        });
      }
      if (messages.length > 0) batches.push({ phoneNumberId: String(pnid), messages });
    }
  }
  return batches;
}
