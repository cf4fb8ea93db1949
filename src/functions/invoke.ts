import crypto from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { InvocationService } from "../invocations/service.js";
import type { ProjectService } from "../projects/service.js";
import type { RuntimePool } from "../runtime/pool.js";
import type { InvokeResult } from "../runtime/process.js";
import { AppError } from "../http/errors.js";
import type { FunctionService, LiveFunction } from "./service.js";
import type { RateLimiter } from "../http/ratelimit.js";

/** Where the invoke route lives; everything after `/invoke` is the function's own sub-path. */
export const invokePath = /^\/platform\/v1\/functions\/([^/?#]+)\/invoke(\/[^?#]*)?(\?[^#]*)?$/;

const hopByHop = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "expect",
  "x-api-key",
  "authorization",
  "cookie",
  "forwarded",
  "x-real-ip",
  "via",
]);

/** True for request headers that never reach a function (credentials, proxies, hop-by-hop). */
export function isStrippedHeader(name: string, connectionTokens: Set<string> = new Set()): boolean {
  return (
    hopByHop.has(name) ||
    connectionTokens.has(name) ||
    name.startsWith("proxy-") ||
    name.startsWith("x-forwarded-") ||
    name.startsWith("x-workerbase-")
  );
}

const responseHopByHop = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "upgrade",
  "trailer",
]);

export interface InvokeDeps {
  projects: ProjectService;
  functions: FunctionService;
  invocations: InvocationService;
  pool: RuntimePool;
  rateLimiter: RateLimiter;
  publicUrl: string;
  maxRequestBodyBytes: number;
  maxErrorChars: number;
  log: (line: string) => void;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > max)
      return reject(new AppError("TOO_LARGE", `The request body is larger than ${max} bytes`));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners("data");
        req.resume();
        reject(new AppError("TOO_LARGE", `The request body is larger than ${max} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function cut(text: string, max: number): string {
  return text.length > max ? text.slice(0, max) : text;
}

function isJsonType(contentType: string | undefined): boolean {
  const type = (contentType ?? "").split(";")[0].trim().toLowerCase();
  return type === "application/json" || type.endsWith("+json");
}

/**
 * The invoke route, served straight from Node's HTTP server (it is the hot path): key check
 * and function lookup from memory, one hop to workerd, the record written after the answer.
 */
export function createInvokeHandler(deps: InvokeDeps) {
  let inFlight = 0;

  async function handle(req: IncomingMessage, res: ServerResponse, match: RegExpExecArray) {
    const started = performance.now();
    const key = req.headers["x-api-key"];
    const identity = typeof key === "string" ? await deps.projects.authenticate(key) : null;
    if (identity) {
      const limited = deps.rateLimiter.check(identity.keyId);
      if (limited) return sendJson(res, 429, { error: limited.message }, limited.headers);
    }
    let fn: LiveFunction | null = null;
    try {
      fn = await deps.functions.resolveForInvoke(
        decodeURIComponent(match[1]),
        identity?.projectId ?? null,
      );
    } catch {
      fn = null;
    }
    if (!fn) return sendJson(res, 404, { error: "Function not found" });
    if (!fn.deploymentId || !fn.workerId) {
      return sendJson(res, 422, {
        error: `The function is not deployed (status: ${fn.status}); deploy it first`,
      });
    }
    let body: Buffer;
    try {
      body = await readBody(req, deps.maxRequestBodyBytes);
    } catch (err) {
      res.setHeader("connection", "close");
      if (err instanceof AppError) return sendJson(res, err.status, err.body());
      throw err;
    }

    const connectionTokens = new Set(
      String(req.headers.connection ?? "")
        .toLowerCase()
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    );
    const headers: Record<string, string | string[]> = {};
    const recorded: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || isStrippedHeader(name, connectionTokens)) continue;
      headers[name] = value;
      recorded[name] = Array.isArray(value) ? value.join(", ") : value;
    }
    const base = req.headers.host
      ? `${deps.publicUrl.split("://")[0]}://${req.headers.host}`
      : deps.publicUrl;
    const invocationId = crypto.randomUUID();
    const createdAt = new Date().toISOString();
    const result = await deps.pool.invoke({
      workerId: fn.workerId,
      deploymentId: fn.deploymentId,
      projectId: fn.projectId,
      url: base + req.url,
      method: req.method ?? "GET",
      headers,
      body: body.length > 0 ? body : null,
      timeoutMs: fn.timeoutMs,
    });
    const durationMs = performance.now() - started;
    const answer = render(result, fn, invocationId);
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
    deps.invocations.record({
      id: invocationId,
      functionId: fn.id,
      projectId: fn.projectId,
      ok: result.kind === "ok" && result.status < 500,
      statusCode: answer.status,
      durationMs,
      requestHeaders: recorded,
      requestBody: body,
      responseBody: result.kind === "ok" ? result.body : answer.body,
      errorMessage:
        result.kind === "ok"
          ? result.status >= 500
            ? `The function answered ${result.status}`
            : null
          : (result.error ?? null),
      logs: result.logs,
      trigger: identity && identity.projectId === fn.projectId ? "api" : "public",
      createdAt,
    });
  }

  function render(result: InvokeResult, fn: LiveFunction, invocationId: string) {
    const idHeader = { "x-invocation-id": invocationId };
    const json = (status: number, value: unknown) => {
      const body = Buffer.from(JSON.stringify(value));
      return {
        status,
        headers: {
          ...idHeader,
          "content-type": "application/json",
          "content-length": String(body.length),
        },
        body,
      };
    };
    if (result.kind !== "ok") {
      const status = result.kind === "timeout" ? 504 : result.status === 503 ? 503 : 500;
      return json(status, {
        error: cut(result.error ?? "The invocation failed", deps.maxErrorChars),
        invocation_id: invocationId,
      });
    }
    const contentType = result.headers.find(([k]) => k === "content-type")?.[1];
    if (fn.mode === "wrapped") {
      const text = result.body.toString("utf8");
      if (result.status < 200 || result.status > 299) {
        return json(result.status, {
          error: cut(text, deps.maxErrorChars),
          invocation_id: invocationId,
        });
      }
      if (isJsonType(contentType)) {
        try {
          return json(result.status, { data: text === "" ? null : JSON.parse(text) });
        } catch {
          // Labelled JSON but not JSON: hand it back as text.
        }
      }
      return json(result.status, { data: text });
    }
    const headers: [string, string][] = [];
    for (const [name, value] of result.headers)
      if (!responseHopByHop.has(name)) headers.push([name, value]);
    headers.push(["x-invocation-id", invocationId], ["content-length", String(result.body.length)]);
    return {
      status: result.status,
      headers: headers.flat() as unknown as Record<string, string>,
      body: result.body,
    };
  }

  return {
    /** Serves one invoke request; never throws. */
    async serve(req: IncomingMessage, res: ServerResponse, match: RegExpExecArray) {
      inFlight++;
      try {
        await handle(req, res, match);
      } catch (err) {
        deps.log(`invoke failed: ${(err as Error).stack}`);
        if (!res.headersSent) sendJson(res, 500, { error: "Internal server error" });
        else res.destroy();
      } finally {
        inFlight--;
      }
    },
    inFlight: () => inFlight,
  };
}
