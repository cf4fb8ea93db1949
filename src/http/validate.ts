import { z } from "zod";
import { defaults } from "../host/config.js";
import { AppError } from "./errors.js";
import { closestBranch, fieldOf, kindOf, plainMessage } from "./messages.js";

/** One bad field of a 400: its path ("runtime_config.timeout", "body" for the whole) and why. */
export interface FieldProblem {
  field: string;
  message: string;
}

/** Validates `value` with `schema`; a failure is a 400 naming each bad field in plain words. */
export function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const details = problems(result.error.issues, []);
  const first = details[0] ?? { field: "body", message: "is not valid" };
  throw new AppError("INVALID_INPUT", `Invalid ${first.field}: ${first.message}`, details);
}

/**
 * Issues as field problems. An unknown key is named at its own path (`runtime_config.colour`),
 * one problem per key; a union whose message is our own answer names the problem of its
 * closest branch at that branch's path. A message a schema author wrote is kept as it is.
 */
function problems(issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[]): FieldProblem[] {
  return issues.flatMap((issue): FieldProblem[] => {
    const path = [...prefix, ...issue.path];
    const ours = issue.message === plainMessage(issue);
    if (issue.code === "unrecognized_keys" && ours)
      return issue.keys.map((key) => ({
        field: fieldOf([...path, key]),
        message: `unknown field "${key}"`,
      }));
    if (issue.code === "invalid_union" && ours) {
      const branch = closestBranch(issue.errors);
      if (branch) return problems(branch, path);
    }
    return [{ field: fieldOf(path), message: issue.message }];
  });
}

/** Reads a JSON body; malformed JSON, or JSON nested too deeply, is a 400. */
export async function jsonBody(request: Request): Promise<unknown> {
  const text = await request.text();
  if (text.trim() === "")
    throw new AppError("BAD_JSON", "The request body is empty; it must be JSON");
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
      return (path.slice(0, 5).join(".") || "body") + (path.length > 5 ? "…" : "");
    }
    for (const [key, child] of Object.entries(entry.value))
      if (typeof child === "object" && child !== null)
        stack.push({ value: child, depth, key, parent: entry });
  }
  return null;
}

/**
 * A body wrapped in its resource key (`{"function": {...}}`): the inner object. The inner
 * value is checked to be an object here, so a wrong one is named by its key ("Invalid
 * function: must be a JSON object") rather than as the schema's root.
 */
export function unwrap(body: unknown, key: string): unknown {
  if (!isObject(body) || !(key in body)) {
    throw new AppError("INVALID_INPUT", `Expected a JSON object with a "${key}" key`, [
      { field: key, message: "is required" },
    ]);
  }
  const inner = body[key];
  if (!isObject(inner)) {
    const message = `must be a JSON object, not ${kindOf(inner)}`;
    throw new AppError("INVALID_INPUT", `Invalid ${key}: ${message}`, [{ field: key, message }]);
  }
  return inner;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A `limit` query value: a 400 when not an integer within range. */
export function limitParam(value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    const message = `must be a whole number from 1 to ${max}`;
    throw new AppError("INVALID_INPUT", `Invalid limit: ${message}`, [{ field: "limit", message }]);
  }
  return Number(value);
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `value` has the shape of a UUID. */
export function isUuid(value: string): boolean {
  return uuidPattern.test(value);
}
