import { isUtf8 } from "node:buffer";
import type { LogLine } from "../runtime/process.js";
import type { Store } from "../store/db.js";
import { invocationStore, type InvocationInsert } from "./store.js";

export type Trigger =
  "api" | "public" | "workflow_function" | "workflow_decide" | "agent_tool" | "webhook" | "cron";

export interface InvocationRecord {
  id: string;
  functionId: string;
  projectId: string;
  ok: boolean;
  statusCode: number;
  durationMs: number;
  requestHeaders: Record<string, string>;
  requestBody: Buffer | null;
  responseBody: Buffer | null;
  errorMessage: string | null;
  logs: LogLine[];
  trigger: Trigger;
  /** The version that ran. */
  version: number | null;
  method: string;
  /** What came after `/invoke`, with the query. */
  path: string;
  errorStack: string | null;
  createdAt: string;
}

/** Stored bodies: text as it is (cut to the limit), other bytes as a note of their size. */
function storedBody(body: Buffer | null, limit: number): string | null {
  if (!body || body.length === 0) return null;
  if (!isUtf8(body)) return `[binary body, ${body.length} bytes]`;
  return body.subarray(0, limit).toString("utf8");
}

/**
 * Invocation records. Writes leave the invoke path at once: records queue in memory and are
 * inserted in batches, one transaction per batch, within `flushMs`.
 */
export class InvocationService {
  private queue: InvocationInsert[] = [];
  private timer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private db: Store,
    private options: { flushMs: number; recordBodyBytes: number; log: (line: string) => void },
  ) {}

  /** Records waiting for the console lines of their `ctx.waitUntil` work, by id. */
  private awaiting = new Map<string, { record: InvocationRecord; timer: NodeJS.Timeout }>();

  /**
   * Keeps a record until the lines its function writes after answering arrive (`addLate`),
   * or `waitMs` has passed (the work was cut off, or its process died), then records it.
   */
  recordLater(r: InvocationRecord, waitMs: number): void {
    const early = this.early.get(r.id);
    if (early) {
      // The lines came first (quick waitUntil work overtakes the record's own setImmediate).
      clearTimeout(early.timer);
      this.early.delete(r.id);
      r.logs = early.cap([...r.logs, ...early.lines]);
      return this.record(r);
    }
    const timer = setTimeout(() => this.release(r.id), waitMs);
    timer.unref();
    this.awaiting.set(r.id, { record: r, timer });
  }

  /** Later lines that arrived before their record was handed over, for a minute at most. */
  private early = new Map<
    string,
    { lines: LogLine[]; cap: (all: LogLine[]) => LogLine[]; timer: NodeJS.Timeout }
  >();

  /** Adds the later lines to a waiting record and records it (or keeps them for it). */
  addLate(id: string, lines: LogLine[], cap: (all: LogLine[]) => LogLine[]): boolean {
    const entry = this.awaiting.get(id);
    if (!entry) {
      if (this.early.has(id) || this.early.size >= 10_000) return false;
      const timer = setTimeout(() => this.early.delete(id), 60_000);
      timer.unref();
      this.early.set(id, { lines, cap, timer });
      return true;
    }
    entry.record.logs = cap([...entry.record.logs, ...lines]);
    this.release(id);
    return true;
  }

  private release(id: string): void {
    const entry = this.awaiting.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.awaiting.delete(id);
    this.record(entry.record);
  }

  record(r: InvocationRecord): void {
    this.queue.push({
      id: r.id,
      function_id: r.functionId,
      project_id: r.projectId,
      status: r.ok ? "success" : "failed",
      status_code: r.statusCode,
      duration_ms: Math.round(r.durationMs * 100) / 100,
      request_headers: JSON.stringify(r.requestHeaders),
      request_body: storedBody(r.requestBody, this.options.recordBodyBytes),
      response_body: storedBody(r.responseBody, this.options.recordBodyBytes),
      error_message: r.errorMessage,
      logs: JSON.stringify(r.logs),
      trigger: r.trigger,
      version: r.version,
      method: r.method,
      path: r.path,
      error_stack: r.errorStack,
      created_at: r.createdAt,
    });
    if (this.queue.length >= 500) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.options.flushMs);
  }

  /** Queues the records still waiting for later lines as they are (on shutdown). */
  releaseWaiting(): void {
    for (const id of [...this.awaiting.keys()]) this.release(id);
  }

  /** Writes everything queued so far. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    this.queue = [];
    this.flushing = this.flushing.then(async () => {
      if (batch.length === 0) return;
      try {
        await this.db.transaction().execute((tx) => invocationStore.insertMany(tx, batch));
      } catch (err) {
        this.options.log(
          `could not store ${batch.length} invocation records: ${(err as Error).message}`,
        );
      }
    });
    return this.flushing;
  }

  async list(functionId: string, status: "success" | "failed" | undefined, limit: number) {
    const rows = await invocationStore.list(this.db, functionId, status, limit);
    return rows.map((row) => ({
      id: row.id,
      function_id: row.function_id,
      status: row.status,
      status_code: row.status_code,
      duration_ms: row.duration_ms,
      request_headers: JSON.parse(row.request_headers),
      request_body: row.request_body,
      response_body: row.response_body,
      error_message: row.error_message,
      logs: JSON.parse(row.logs),
      trigger: row.trigger,
      version: row.version,
      method: row.method,
      path: row.path,
      error_stack: row.error_stack,
      created_at: row.created_at,
    }));
  }
}
