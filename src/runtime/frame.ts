import { z } from "zod";
import type { WireResponse } from "./wire.js";

/** The limits the host enforces on what a function's isolate sends back. */
export interface FrameLimits {
  maxConsoleLines: number;
  maxConsoleBytes: number;
  maxResponseBodyBytes: number;
  maxSubrequests: number;
}

export type ResultKind =
  | "ok"
  | "threw"
  | "not_response"
  | "no_handler"
  | "too_large"
  | "load"
  | "internal"
  | "timeout"
  | "cpu"
  | "replaced"
  | "crashed";

export interface LogLine {
  level: string;
  message: string;
  timestamp: string;
}

/** What came back: a response, or why there is none. */
export interface InvokeResult {
  kind: ResultKind;
  status: number;
  headers: [string, string][];
  body: Buffer;
  logs: LogLine[];
  error?: string;
  /** Console lines of `ctx.waitUntil` work will follow, for the record (`/__wb/late`). */
  waiting?: boolean;
  /** For an uncaught error: its stack, the user's own frames only (see `userFrames`). */
  stack?: string;
  /** Set for probes: the type of the module's `handler` export. */
  handlerType?: string;
  /** Set for probes: the type of the module's `scheduled` export. */
  scheduledType?: string;
  /** Set for probes: `module` (an `export default`) or `handler` (top-level functions). */
  shape?: "handler" | "module";
  /** Set for probes of module syntax: the type of the default export. */
  exportedType?: string;
}

export function failed(kind: ResultKind, error: string, status = 500): InvokeResult {
  return { kind, status, headers: [], body: Buffer.alloc(0), logs: [], error };
}

/** The wrapper's own modules, whose frames a user's stack never shows. */
const wrapperFrame = /\(?workerbase-[a-z0-9-]+\.js:\d+:\d+\)?\s*$/;

/**
 * An error's stack as the user should see it: the message and the frames in the user's own
 * code (and the runtime's, which point nowhere of ours), without the lines of the wrapper
 * Workerbase loads beside it; at most 16 KiB. Null when nothing is left.
 */
export function userFrames(stack: string): string | null {
  const lines = stack.slice(0, maxErrorChars).split("\n");
  const kept = lines.filter((line) => !(/^\s+at /.test(line) && wrapperFrame.test(line)));
  const text = kept.join("\n").trimEnd();
  return text === "" ? null : text;
}

/** Largest error text kept from a frame; the invoke route cuts it shorter still. */
const maxErrorChars = 16 * 1024;
const maxHeaders = 500;
const maxHeaderBytes = 64 * 1024;

// The metadata is written by code inside the tenant's isolate, so it is untrusted input:
// every field is checked for type and size, and nothing unknown passes.
const logLine = z.object({
  level: z.enum(["log", "info", "warn", "error", "debug"]),
  message: z.string(),
  timestamp: z.string().max(40),
});
const metaSchema = z.union([
  z.object({
    probe: z.literal(true),
    shape: z.enum(["handler", "module"]).optional(),
    exported: z.string().max(20).optional(),
    handler: z.string().max(20),
    scheduled: z.string().max(20).optional(),
  }),
  z.object({
    kind: z.enum(["threw", "not_response", "no_handler", "too_large", "load", "internal"]),
    error: z.string(),
    stack: z.string().optional(),
    logs: z.array(logLine).optional(),
    waiting: z.literal(true).optional(),
  }),
  z.object({
    status: z.number().int().min(200).max(599),
    headers: z.array(z.tuple([z.string(), z.string()])).max(maxHeaders),
    logs: z.array(logLine).optional(),
    waiting: z.literal(true).optional(),
  }),
]);

/** The largest metadata a frame may carry: console output as JSON, at most 6 bytes a byte. */
export function maxMetaBytes(limits: FrameLimits): number {
  return 6 * limits.maxConsoleBytes + 100 * limits.maxConsoleLines + maxHeaderBytes + 64 * 1024;
}

/** The largest frame the host reads: metadata and body; past it the connection is cut. */
export function maxFrameBytes(limits: FrameLimits): number {
  return maxMetaBytes(limits) + limits.maxResponseBodyBytes;
}

export function tooLarge(limits: FrameLimits): InvokeResult {
  return failed(
    "too_large",
    `The response body is larger than ${limits.maxResponseBodyBytes} bytes`,
  );
}

/** Keeps console lines within the limits, with one notice when some were dropped. */
/** Console lines sent after an answer (untrusted: from the isolate), checked like a frame's. */
export function parseLateLines(body: unknown, limits: FrameLimits): LogLine[] | null {
  const parsed = z
    .array(logLine)
    .max(limits.maxConsoleLines + 1)
    .safeParse(body);
  return parsed.success ? capLogs(parsed.data, limits) : null;
}

export function capLogs(lines: LogLine[], limits: FrameLimits): LogLine[] {
  const out: LogLine[] = [];
  let bytes = 0;
  for (const line of lines) {
    const size = Buffer.byteLength(line.message);
    if (out.length >= limits.maxConsoleLines || bytes + size > limits.maxConsoleBytes) {
      out.push({
        level: "warn",
        message: `[workerbase] console output past ${limits.maxConsoleLines} lines or ${limits.maxConsoleBytes} bytes was dropped`,
        timestamp: line.timestamp,
      });
      break;
    }
    bytes += size;
    out.push(line);
  }
  return out;
}

const unreadable = (why: string) =>
  failed("internal", `The function's result could not be read (${why})`);

/** Splits and checks the supervisor's frame (metadata JSON, then the function's body). */
export function parseFrame(res: WireResponse, limits: FrameLimits): InvokeResult {
  const data = res.body;
  const metaLength = Number(res.headers.get("x-workerbase-meta-length"));
  if (res.status !== 200 || !Number.isSafeInteger(metaLength) || metaLength < 2) {
    return failed("internal", `the runtime answered ${res.status} without a result`);
  }
  if (metaLength > data.length || metaLength > maxMetaBytes(limits)) {
    return unreadable("its metadata is malformed or too large");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(data.toString("utf8", 0, metaLength));
  } catch {
    return unreadable("its metadata is not JSON");
  }
  const parsed = metaSchema.safeParse(raw);
  if (!parsed.success) return unreadable("its metadata does not have the expected shape");
  const meta = parsed.data;
  if ("probe" in meta)
    return {
      ...failed("ok", ""),
      error: undefined,
      handlerType: meta.handler,
      scheduledType: meta.scheduled,
      shape: meta.shape,
      exportedType: meta.exported,
    };
  const logs = capLogs(meta.logs ?? [], limits);
  const body = data.subarray(metaLength);
  if ("kind" in meta) {
    const result = failed(meta.kind, meta.error.slice(0, maxErrorChars));
    const stack = meta.stack === undefined ? undefined : userFrames(meta.stack);
    return {
      ...result,
      logs,
      ...(stack ? { stack } : {}),
      ...(meta.waiting ? { waiting: true } : {}),
    };
  }
  if (body.length > limits.maxResponseBodyBytes) return { ...tooLarge(limits), logs };
  const headerBytes = meta.headers.reduce((n, [k, v]) => n + k.length + v.length, 0);
  if (headerBytes > maxHeaderBytes) return { ...unreadable("its headers are too large"), logs };
  return {
    kind: "ok",
    status: meta.status,
    headers: meta.headers,
    body,
    logs,
    ...(meta.waiting ? { waiting: true } : {}),
  };
}
