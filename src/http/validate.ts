import { z } from "zod";
import { AppError } from "./errors.js";

/** Validates `value` with `schema`; a failure is a 400 naming each bad field. */
export function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const details = result.error.issues.map((issue) => ({
    field: issue.path.join(".") || "(body)",
    message: issue.message,
  }));
  const first = details[0];
  throw new AppError("INVALID_INPUT", `Invalid ${first.field}: ${first.message}`, details);
}

/** Reads a JSON body; malformed JSON is a 400. */
export async function jsonBody(request: Request): Promise<unknown> {
  const text = await request.text();
  if (text.trim() === "")
    throw new AppError("BAD_JSON", "The request body is empty; expected JSON");
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError("BAD_JSON");
  }
}

/** A body wrapped in its resource key (`{"function": {...}}`): the inner object. */
export function unwrap(body: unknown, key: string): unknown {
  if (typeof body !== "object" || body === null || Array.isArray(body) || !(key in body)) {
    throw new AppError("INVALID_INPUT", `Expected a JSON object with a "${key}" key`, [
      { field: key, message: "Required" },
    ]);
  }
  return (body as Record<string, unknown>)[key];
}

/** A `limit` query value: a 400 when not an integer within range. */
export function limitParam(value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new AppError("INVALID_INPUT", `Invalid limit: expected an integer from 1 to ${max}`, [
      { field: "limit", message: `must be an integer from 1 to ${max}` },
    ]);
  }
  return Number(value);
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `value` has the shape of a UUID. */
export function isUuid(value: string): boolean {
  return uuidPattern.test(value);
}
