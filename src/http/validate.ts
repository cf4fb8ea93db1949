import { z } from "zod";
import { defaults } from "../host/config.js";
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

/** Reads a JSON body; malformed JSON, or JSON nested too deeply, is a 400. */
export async function jsonBody(request: Request): Promise<unknown> {
  const text = await request.text();
  if (text.trim() === "")
    throw new AppError("BAD_JSON", "The request body is empty; expected JSON");
  return parseJson(text);
}

/** Parses a JSON request body: a 400 when it is malformed or nested past `maxJsonDepth`. */
export function parseJson(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AppError("BAD_JSON");
  }
  const field = tooDeep(value, defaults.maxJsonDepth);
  if (field !== null) {
    throw new AppError(
      "INVALID_INPUT",
      `Invalid ${field}: JSON nested deeper than ${defaults.maxJsonDepth} levels`,
      [{ field, message: `nested deeper than ${defaults.maxJsonDepth} levels` }],
    );
  }
  return value;
}

/**
 * Where `value` nests objects and arrays more than `max` levels deep (the top level is 1), as
 * the first keys of the path there ("function.tool.input_schema.properties.a…"), or null. Iterative, so a value too
 * deep for the stack (which JSON.parse still builds) is measured all the same; deeper values
 * would overflow JSON.stringify, SQLite's JSON functions and schema validators later.
 */
export function tooDeep(value: unknown, max: number): string | null {
  type Entry = { value: unknown; depth: number; key: string; parent: Entry | null };
  const stack: Entry[] = [{ value, depth: 0, key: "", parent: null }];
  while (stack.length > 0) {
    const entry = stack.pop()!;
    if (typeof entry.value !== "object" || entry.value === null) continue;
    const depth = entry.depth + 1;
    if (depth > max) {
      const path: string[] = [];
      for (let e: Entry | null = entry; e && e.parent; e = e.parent) path.unshift(e.key);
      return (path.slice(0, 5).join(".") || "(body)") + (path.length > 5 ? "…" : "");
    }
    for (const [key, child] of Object.entries(entry.value))
      if (typeof child === "object" && child !== null)
        stack.push({ value: child, depth, key, parent: entry });
  }
  return null;
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
