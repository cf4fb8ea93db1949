import { z } from "zod";
import { defaults } from "../host/config.js";
import { isUuid, tooDeep } from "../http/validate.js";
import { Schedules } from "../schedules/cron.js";

export const slugPattern = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

const Slug = z
  .string()
  .max(64)
  .regex(slugPattern, "must be lowercase letters, digits and single hyphens")
  .refine((s) => !isUuid(s), "must not have the shape of a UUID");

export const RuntimeConfig = z.strictObject({
  timeout: z.number().int().min(1).max(300).optional(),
  memory: z.number().int().min(16).max(1024).optional(),
  /** CPU budget: how long one invocation may keep its runtime process busy without pause. */
  cpu_ms: z.number().int().min(10).max(30_000).optional(),
  compatibility_flags: z
    .array(z.enum(["nodejs_compat"]))
    .max(1)
    .optional(),
});

export const Tool = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, "must match [A-Za-z0-9_.-]{1,128}"),
  description: z.string().min(1).max(4096),
  input_schema: z
    .record(z.string(), z.unknown())
    .refine((s) => s.type === "object", 'must be a JSON Schema with "type": "object"')
    .refine(
      (s) => tooDeep(s, defaults.maxJsonDepth) === null,
      `must not nest deeper than ${defaults.maxJsonDepth} levels`,
    ),
});

const fields = {
  name: z.string().trim().min(1).max(100),
  slug: Slug.optional(),
  description: z.string().max(2000).nullable().optional(),
  code: z.string().max(1024 * 1024, "must be at most 1 MiB"),
  function_type: z.literal("cloudflare_worker", "must be cloudflare_worker").optional(),
  runtime_config: RuntimeConfig.optional(),
  public_endpoint: z.boolean().optional(),
  invoke_response_mode: z.enum(["passthrough", "wrapped"]).optional(),
  tool: Tool.nullable().optional(),
  schedules: Schedules.optional(),
  /** Applies at the next deploy, like `code`. */
  language: z.enum(["javascript", "typescript"]).optional(),
};

/** `{"function": {...}}` of POST /functions. */
export const FunctionCreate = z.strictObject(fields);
/** `{"function": {...}}` of PATCH /functions/{id}: every field optional. */
export const FunctionUpdate = z.strictObject({
  ...fields,
  name: fields.name.optional(),
  code: fields.code.optional(),
});

/** The optional body of POST /functions/{id}/deploy. */
export const DeployRequest = z.strictObject({
  message: z.string().max(1000, "must be at most 1000 characters").optional(),
});

/** The body of POST /functions/{id}/rollback. */
export const RollbackRequest = z.strictObject({
  version: z
    .number("must be a version number")
    .int("must be a whole version number")
    .min(1, "must be a version number from 1 up"),
});

export type FunctionCreate = z.infer<typeof FunctionCreate>;
export type FunctionUpdate = z.infer<typeof FunctionUpdate>;

export interface RuntimeSettings {
  timeout: number;
  memory: number;
  cpu_ms?: number;
  compatibility_flags?: "nodejs_compat"[];
}

export const runtimeDefaults: RuntimeSettings & { cpu_ms: number } = {
  timeout: 30,
  memory: 128,
  cpu_ms: 1000,
};

/** A slug made from a name: lowercase, hyphens, never empty, never UUID-shaped. */
export function slugify(name: string): string {
  const slug = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64)
    .replace(/-+$/, "");
  if (!slug) return "function";
  return isUuid(slug) ? `fn-${slug}`.slice(0, 64) : slug;
}
