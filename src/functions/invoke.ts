import crypto from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { InvocationRecord, InvocationService, Trigger } from "../invocations/service.js";
import type { ProjectService } from "../projects/service.js";
import type { RuntimePool } from "../runtime/pool.js";
import type { InvokeResult } from "../runtime/process.js";
import { AppError, failureLine } from "../http/errors.js";
import type { FunctionService, LiveFunction } from "./service.js";
import type { InvocationMetrics } from "../invocations/metrics.js";
import type { RateLimiter } from "../http/ratelimit.js";
import { clientKey, type KeyGuard } from "../http/keyguard.js";
import { storeUnavailableMessage } from "../http/app.js";
import { isStoreUnavailable } from "../store/db.js";
import { toSourcePositions } from "./typescript.js";
import type { TraceMap } from "@jridgewell/trace-mapping";

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

/**
 * Response headers a function may not set. `Service-Worker-Allowed` would let its page
 * register a service worker over the whole origin (the dashboard's, unless invocations have
 * their own); `Clear-Site-Data` would wipe the origin's storage (signing the dashboard out);
 * `X-Content-Type-Options` is ours to set.
 */
const responseDropped = new Set([
  "service-worker-allowed",
  "clear-site-data",
  "x-content-type-options",
]);

/**
 * The policy every invocation answer served on the dashboard's origin carries: a page a
 * function returns runs its scripts in an opaque origin (no `allow-same-origin`), so it cannot
 * read the dashboard's sessionStorage, localStorage or cookies, nor register a service worker.
 */
export const sandboxPolicy = "sandbox allow-scripts allow-forms allow-popups allow-downloads";

/** Headers every answer of the invoke route carries (the sandbox unless `sandboxed` is false). */
function guardHeaders(sandboxed = true): Record<string, string> {
  return sandboxed
    ? { "content-security-policy": sandboxPolicy, "x-content-type-options": "nosniff" }
    : { "x-content-type-options": "nosniff" };
}

export interface InvokeDeps {
  projects: ProjectService;
  functions: FunctionService;
  invoker: Invoker;
  rateLimiter: RateLimiter;
  /** Counts wrong keys per client address; past its bound keys are ignored here (so 404). */
  keyGuard: KeyGuard;
  publicUrl: string;
  /**
   * The separate origin invocations are served on, if any: requests whose `Host` is its host
   * get no sandbox policy; all others (the dashboard's origin) still do.
   */
  invokeOrigin?: string;
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
    ...guardHeaders(),
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

const noBody = Buffer.alloc(0);

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  // Without a length or chunked encoding an HTTP/1.1 request has no body: skip the stream.
  if (req.headers["transfer-encoding"] === undefined && !Number(req.headers["content-length"])) {
    req.resume();
    return Promise.resolve(noBody);
  }
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > max)
      return reject(new AppError("TOO_LARGE", `The request body is larger than ${max} bytes`));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      // The caller discards the rest of the body (see `discard`).
      if (size > max)
        return reject(new AppError("TOO_LARGE", `The request body is larger than ${max} bytes`));
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/**
 * Reads and drops the rest of a refused body, so the client can finish sending and read the
 * answer (closing mid-upload makes most clients report a reset instead of the 413). A client
 * that keeps sending for 30 s is cut off.
 */
function discard(req: IncomingMessage): void {
  const timer = setTimeout(() => req.destroy(), 30_000);
  timer.unref();
  req.once("close", () => clearTimeout(timer));
  req.removeAllListeners("data");
  req.resume();
}

function cut(text: string, max: number): string {
  return text.length > max ? text.slice(0, max) : text;
}

function isJsonType(contentType: string | undefined): boolean {
  const type = (contentType ?? "").split(";")[0].trim().toLowerCase();
  return type === "application/json" || type.endsWith("+json");
}

/** The HTTP status an invocation result answers with. */
export function statusOf(result: InvokeResult): number {
  if (result.kind === "ok") return result.status;
  if (result.kind === "timeout" || result.kind === "cpu") return 504;
  return result.status === 503 ? 503 : 500;
}

/** A request to run a function, from the invoke route or from inside the platform. */
export interface InvocationInput {
  url: string;
  method: string;
  /** Headers the function receives (already filtered). */
  headers: Record<string, string | string[]>;
  body: Buffer | null;
  trigger: Trigger;
  /** Defaults to the function's own timeout; callers may only shorten it. */
  timeoutMs?: number;
  /** A schedule tick: its `X-Workerbase-Cron` headers reach the function (see `cronInput`). */
  tick?: boolean;
}

export interface InvocationOutcome {
  invocationId: string;
  result: InvokeResult;
  status: number;
  durationMs: number;
}

/**
 * Runs a deployed function once and records the invocation. Used by the invoke route and by
 * everything else that calls functions (workflows, webhooks, agent tools).
 */
export class Invoker {
  constructor(
    private pool: RuntimePool,
    private invocations: InvocationService,
    private functions: FunctionService,
    readonly metrics: InvocationMetrics,
  ) {}

  /** Why a function cannot run now (not deployed, held back), as an error; null if it can. */
  refusal(fn: LiveFunction): AppError | null {
    if (!fn.deploymentId || !fn.workerId) {
      return new AppError(
        "NOT_ALLOWED",
        `The function is not deployed (status: ${fn.status}); deploy it first`,
      );
    }
    const held = this.functions.heldUntil(fn.id);
    if (held) {
      return new AppError(
        "UNAVAILABLE",
        `The function is held back until ${held} after repeatedly hanging or crashing its runtime process`,
        undefined,
        { "retry-after": String(Math.max(1, Math.ceil((Date.parse(held) - Date.now()) / 1000))) },
      );
    }
    return null;
  }

  async run(fn: LiveFunction, input: InvocationInput): Promise<InvocationOutcome> {
    const refused = this.refusal(fn);
    if (refused) throw refused;
    if (!fn.deploymentId || !fn.workerId) throw new AppError("INTERNAL");
    const started = performance.now();
    const invocationId = crypto.randomUUID();
    const createdAt = new Date().toISOString();
    const raw = await this.pool.invoke({
      workerId: fn.workerId,
      deploymentId: fn.deploymentId,
      projectId: fn.projectId,
      url: input.url,
      method: input.method,
      headers: input.headers,
      body: input.body && input.body.length > 0 ? input.body : null,
      timeoutMs: Math.min(fn.timeoutMs, input.timeoutMs ?? fn.timeoutMs),
      memoryMb: fn.memoryMb,
      cpuMs: fn.cpuMs,
      functionId: fn.id,
      tick: input.tick,
      recordId: invocationId,
    });
    // A TypeScript function's positions name its own lines, not the compiled module's.
    const result = fn.sourceMap ? toSource(raw, fn.sourceMap) : raw;
    const durationMs = performance.now() - started;
    const status = statusOf(result);
    const ok = result.kind === "ok" && result.status < 500;
    this.metrics.observe(result.kind, ok, durationMs);
    // Recorded after the caller has its answer (setImmediate runs after the response is written);
    // with ctx.waitUntil work going on, once its console lines came (or the timeout passed).
    const record = (r: InvocationRecord) =>
      result.waiting
        ? this.invocations.recordLater(r, fn.timeoutMs + 5000)
        : this.invocations.record(r);
    setImmediate(() =>
      record({
        id: invocationId,
        functionId: fn.id,
        projectId: fn.projectId,
        ok,
        statusCode: status,
        durationMs,
        requestHeaders: flatten(input.headers),
        requestBody: input.body,
        responseBody:
          result.kind === "ok" ? result.body : Buffer.from(JSON.stringify({ error: result.error })),
        errorMessage:
          result.kind === "ok"
            ? result.status >= 500
              ? `The function answered ${result.status}`
              : null
            : (result.error ?? null),
        logs: result.logs,
        trigger: input.trigger,
        version: fn.version,
        method: input.method,
        path: calledPath(input.url),
        errorStack: result.kind === "threw" ? (result.stack ?? null) : null,
        createdAt,
      }),
    );
    return { invocationId, result, status, durationMs };
  }
}

/** The part of an invoke URL after `/invoke`, with its query (`/` for the endpoint itself). */
export function calledPath(url: string): string {
  let target: string;
  try {
    const parsed = new URL(url);
    target = parsed.pathname + parsed.search;
  } catch {
    return "/";
  }
  const match = invokePath.exec(target);
  if (!match) return "/";
  return (match[2] ?? "/") + (match[3] ?? "");
}

/** `result` with every position in its error, stack and console lines mapped to the source. */
function toSource(result: InvokeResult, map: TraceMap): InvokeResult {
  return {
    ...result,
    error: result.error === undefined ? undefined : toSourcePositions(result.error, map),
    stack: result.stack === undefined ? undefined : toSourcePositions(result.stack, map),
    logs: result.logs.map((line) => ({ ...line, message: toSourcePositions(line.message, map) })),
  };
}

function flatten(headers: Record<string, string | string[]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) out[k] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

/**
 * The invoke route, served straight from Node's HTTP server (it is the hot path): key check
 * and function lookup from memory, one hop to workerd, the record written after the answer.
 */
export function createInvokeHandler(deps: InvokeDeps) {
  let inFlight = 0;
  const scheme = deps.publicUrl.split("://")[0];
  const noTokens = new Set<string>();
  const invokeUrl = deps.invokeOrigin ? new URL(deps.invokeOrigin) : null;

  /** True unless the request came for the separate invoke origin (by its `Host`). */
  function sandboxFor(req: IncomingMessage): boolean {
    if (!invokeUrl || !req.headers.host) return true;
    try {
      // Parsed with the origin's scheme, so an explicit default port compares equal.
      return new URL(`${invokeUrl.protocol}//${req.headers.host}`).host !== invokeUrl.host;
    } catch {
      return true;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse, match: RegExpExecArray) {
    const key = req.headers["x-api-key"];
    const identity =
      typeof key === "string"
        ? await deps.keyGuard.verifyOrIgnore(clientKey(req.socket.remoteAddress), key, (k) =>
            deps.projects.authenticate(k),
          )
        : null;
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
    const refused = deps.invoker.refusal(fn);
    if (refused) return sendJson(res, refused.status, refused.body(), refused.headers);
    let body: Buffer;
    try {
      body = await readBody(req, deps.maxRequestBodyBytes);
    } catch (err) {
      discard(req);
      if (err instanceof AppError) return sendJson(res, err.status, err.body());
      throw err;
    }

    const connection = req.headers.connection;
    const connectionTokens = connection
      ? new Set(
          connection
            .toLowerCase()
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean),
        )
      : noTokens;
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || isStrippedHeader(name, connectionTokens)) continue;
      headers[name] = value;
    }
    const base = req.headers.host ? `${scheme}://${req.headers.host}` : deps.publicUrl;
    const outcome = await deps.invoker.run(fn, {
      url: base + req.url,
      method: req.method ?? "GET",
      headers,
      body,
      trigger: identity && identity.projectId === fn.projectId ? "api" : "public",
    });
    const answer = render(outcome.result, fn, outcome.invocationId, sandboxFor(req));
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
  }

  function render(
    result: InvokeResult,
    fn: LiveFunction,
    invocationId: string,
    sandboxed: boolean,
  ) {
    const idHeader = { "x-invocation-id": invocationId };
    const guard = guardHeaders(sandboxed);
    const json = (status: number, value: unknown) => {
      const body = Buffer.from(JSON.stringify(value));
      return {
        status,
        headers: {
          ...idHeader,
          ...guard,
          "content-type": "application/json",
          "content-length": String(body.length),
        },
        body,
      };
    };
    if (result.kind !== "ok") {
      return json(statusOf(result), {
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
    // The function's own Content-Security-Policy stays, as a second policy: browsers enforce
    // every policy they get, so it can only add restrictions to the sandbox.
    const headers: [string, string][] = [];
    for (const [name, value] of result.headers) {
      const lower = name.toLowerCase();
      if (!responseHopByHop.has(lower) && !responseDropped.has(lower)) headers.push([name, value]);
    }
    headers.push(
      ...Object.entries(guard),
      ["x-invocation-id", invocationId],
      ["content-length", String(result.body.length)],
    );
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
        deps.log(failureLine(`${req.method} ${req.url?.split("?")[0]} (invoke)`, err));
        if (!res.headersSent && isStoreUnavailable(err))
          sendJson(res, 503, { error: storeUnavailableMessage });
        else if (!res.headersSent) sendJson(res, 500, { error: "Internal server error" });
        else res.destroy();
      } finally {
        inFlight--;
      }
    },
    inFlight: () => inFlight,
  };
}
