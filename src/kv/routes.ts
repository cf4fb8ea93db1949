import { Hono } from "hono";
import type { PlatformEnv } from "../http/app.js";
import { AppError } from "../http/errors.js";
import { limitParam } from "../http/validate.js";
import { headerSafeJson, kvLimits, type KvService } from "./service.js";

const valuesPath = "/kv/values/";

/** The key of a /kv/values/{key} URL, decoded strictly (Hono would pass bad escapes through). */
function keyParam(url: string): string {
  const path = new URL(url).pathname;
  const raw = path.slice(path.indexOf(valuesPath) + valuesPath.length);
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new AppError("INVALID_INPUT", "Could not URL-decode key name", [
      { field: "key", message: "not a valid URL-encoded UTF-8 string" },
    ]);
  }
}

function integerParam(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d{1,15}$/.test(value)) {
    throw new AppError("INVALID_INPUT", `Invalid ${field}: must be a whole number of seconds`, [
      { field, message: "must be a whole number of seconds" },
    ]);
  }
  return Number(value);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The metadata header of a PUT: JSON, best sent as ASCII (non-ASCII escaped as \uXXXX).
 * Raw non-ASCII bytes are read as UTF-8 when they are valid UTF-8, else as Latin-1.
 */
function metadataHeader(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    return strictUtf8.decode(Buffer.from(value, "latin1"));
  } catch {
    return value;
  }
}

/** The project's KV namespace over HTTP, under /platform/v1/kv (CONTRACT 3.8). */
export function kvRoutes(kv: KvService) {
  const app = new Hono<PlatformEnv>();
  app.get("/keys", async (c) => {
    const limit = limitParam(c.req.query("limit"), kvLimits.maxListKeys, kvLimits.maxListKeys);
    const result = await kv.list(c.get("projectId"), {
      prefix: c.req.query("prefix"),
      cursor: c.req.query("cursor"),
      limit,
    });
    return c.json({ data: result });
  });
  app.get("/values/:key{.+}", async (c) => {
    const found = await kv.get(c.get("projectId"), keyParam(c.req.url));
    if (!found) throw new AppError("NOT_FOUND", "Key not found");
    c.header("content-type", "application/octet-stream");
    if (found.metadata !== null) c.header("x-kv-metadata", headerSafeJson(found.metadata));
    if (found.expiration !== null) c.header("x-kv-expiration", String(found.expiration));
    // Both drivers (better-sqlite3, pg) hand out Buffers over plain ArrayBuffers.
    return c.body(found.value as Uint8Array<ArrayBuffer>);
  });
  app.put("/values/:key{.+}", async (c) => {
    const length = c.req.header("content-length");
    await kv.put(
      c.get("projectId"),
      keyParam(c.req.url),
      c.req.raw.body,
      {
        expirationTtl: integerParam(c.req.query("expiration_ttl"), "expiration_ttl"),
        expiration: integerParam(c.req.query("expiration"), "expiration"),
        metadata: metadataHeader(c.req.header("x-kv-metadata")),
      },
      length ? Number(length) : undefined,
    );
    return c.body(null, 204);
  });
  app.delete("/values/:key{.+}", async (c) => {
    await kv.delete(c.get("projectId"), keyParam(c.req.url));
    return c.body(null, 204);
  });
  return app;
}
