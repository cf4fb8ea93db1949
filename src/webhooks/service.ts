import crypto from "node:crypto";
import net from "node:net";
import { AppError } from "../http/errors.js";
import { isPublicAddress } from "../http/egress.js";
import { isUuid } from "../http/validate.js";
import type { FunctionService } from "../functions/service.js";
import type { SecretBox } from "../secrets/crypto.js";
import type { Clock } from "../store/clock.js";
import { now, type Store } from "../store/db.js";
import { secretContext, type DeliverySender } from "./deliveries.js";
import { sampleEvent, type PlatformEvent } from "./events.js";
import {
  deliveryStatuses,
  type EventName,
  type WebhookCreate,
  type WebhookUpdate,
} from "./schema.js";
import { webhookStore, type Db, type DeliveryRow, type WebhookRow } from "./store.js";

export interface WebhookServiceOptions {
  allowPrivateNetwork: boolean;
  /** The time deliveries are queued at (and first due). */
  clock: Clock;
  /** Called after deliveries were stored, so the worker looks for them at once. */
  kick: () => void;
}

export interface DeliveryQuery {
  webhook_id?: string;
  status?: string;
  limit: number;
  after?: string;
}

function invalid(field: string, message: string): AppError {
  return new AppError("INVALID_INPUT", `Invalid ${field}: ${message}`, [{ field, message }]);
}

const notFound = () => new AppError("NOT_FOUND", "Webhook not found");

/** Subscriptions (a URL or a function of the project), the events they get, and deliveries. */
export class WebhookService {
  constructor(
    private db: Store,
    private box: SecretBox,
    private functions: FunctionService,
    private sender: DeliverySender,
    private options: WebhookServiceOptions,
  ) {}

  render(row: WebhookRow, secretKey?: string) {
    return {
      id: row.id,
      url: row.url,
      function_id: row.function_id,
      events: JSON.parse(row.events) as string[],
      headers: JSON.parse(row.headers) as Record<string, string>,
      active: row.active === 1,
      ...(secretKey !== undefined ? { secret_key: secretKey } : {}),
      project_id: row.project_id,
      created_at: row.created_at,
      updated_at: row.updated_at,
    };
  }

  renderDelivery(row: DeliveryRow) {
    return {
      id: row.id,
      webhook_id: row.webhook_id,
      event: row.event,
      status: row.status,
      attempts: row.attempts,
      last_status_code: row.last_status_code,
      last_error: row.last_error,
      next_attempt_at:
        row.status === "pending" ? new Date(row.next_attempt_at).toISOString() : null,
      created_at: row.created_at,
      delivered_at: row.delivered_at,
    };
  }

  list(projectId: string) {
    return webhookStore.list(this.db, projectId);
  }

  async get(projectId: string, id: string): Promise<WebhookRow> {
    if (!isUuid(id)) throw notFound();
    const row = await webhookStore.byId(this.db, projectId, id.toLowerCase());
    if (!row) throw notFound();
    return row;
  }

  /** A delivery URL: http(s), and a public address unless private networks are allowed. */
  private checkUrl(value: string): string {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw invalid("url", "not a valid URL");
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw invalid("url", "must be an http:// or https:// URL");
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const local = host === "localhost" || host.endsWith(".localhost");
    if (!this.options.allowPrivateNetwork && (local || (net.isIP(host) && !isPublicAddress(host))))
      throw invalid(
        "url",
        `${url.host} is not a public address; deliveries may only reach public addresses`,
      );
    return url.toString();
  }

  /** A function of the project, by id or slug; stored by id. */
  private async checkFunction(projectId: string, ref: string): Promise<string> {
    try {
      return (await this.functions.get(projectId, ref)).id;
    } catch (err) {
      if (err instanceof AppError && err.status === 404)
        throw invalid("function_id", `no function "${ref}" in this project`);
      throw err;
    }
  }

  async create(projectId: string, input: WebhookCreate) {
    const id = crypto.randomUUID();
    const secretKey = input.secret_key ?? `whsec_${crypto.randomBytes(24).toString("hex")}`;
    const at = now();
    const row: WebhookRow = {
      id,
      project_id: projectId,
      url: input.url !== undefined ? this.checkUrl(input.url) : null,
      function_id:
        input.function_id !== undefined
          ? await this.checkFunction(projectId, input.function_id)
          : null,
      events: JSON.stringify(input.events),
      secret_sealed: this.box.seal(secretKey, secretContext(id)),
      headers: JSON.stringify(input.headers ?? {}),
      active: input.active === false ? 0 : 1,
      created_at: at,
      updated_at: at,
    };
    await webhookStore.insert(this.db, row);
    return { row, secretKey };
  }

  async update(projectId: string, id: string, input: WebhookUpdate): Promise<WebhookRow> {
    const row = await this.get(projectId, id);
    const patch: Partial<WebhookRow> = { updated_at: now() };
    if (input.url !== undefined) {
      patch.url = this.checkUrl(input.url);
      patch.function_id = null;
    }
    if (input.function_id !== undefined) {
      patch.function_id = await this.checkFunction(projectId, input.function_id);
      patch.url = null;
    }
    if (input.events !== undefined) patch.events = JSON.stringify(input.events);
    if (input.headers !== undefined) patch.headers = JSON.stringify(input.headers);
    if (input.active !== undefined) patch.active = input.active ? 1 : 0;
    if (input.secret_key !== undefined)
      patch.secret_sealed = this.box.seal(input.secret_key, secretContext(row.id));
    await webhookStore.update(this.db, row.id, patch);
    return (await webhookStore.byId(this.db, projectId, row.id))!;
  }

  /** Deletes a subscription; its pending deliveries are cancelled (they end `failed`). */
  async remove(projectId: string, id: string): Promise<void> {
    const row = await this.get(projectId, id);
    await this.db.transaction().execute(async (tx) => {
      await webhookStore.cancelPending(tx, row.id, now());
      await webhookStore.delete(tx, row.id);
    });
  }

  /** Sends a sample of the subscription's first event once, now, and tells how it went. */
  async test(projectId: string, id: string) {
    const row = await this.get(projectId, id);
    const event = (JSON.parse(row.events) as EventName[])[0];
    const sample = sampleEvent(event, projectId);
    const out = { id: crypto.randomUUID(), event, payload: JSON.stringify(sample.payload) };
    const created = now();
    const outcome = await this.sender.send(row, out);
    const at = now();
    await webhookStore.insertFinished(this.db, {
      id: out.id,
      project_id: projectId,
      webhook_id: row.id,
      event,
      payload: out.payload,
      conversation_id: null,
      status: outcome.ok ? "delivered" : "failed",
      attempts: 1,
      last_status_code: outcome.statusCode,
      last_error: outcome.error,
      queued_at: this.options.clock.now(),
      next_attempt_at: this.options.clock.now(),
      lease_owner: null,
      lease_until: null,
      created_at: created,
      updated_at: at,
      delivered_at: outcome.ok ? at : null,
    });
    return {
      delivery_id: out.id,
      event,
      success: outcome.ok,
      status_code: outcome.statusCode,
      error: outcome.error,
      duration_ms: outcome.durationMs,
    };
  }

  /**
   * Stores one delivery per active subscription of the project that listens to each event,
   * inside `db` (the caller's transaction, so events are stored with what caused them). Call
   * `kick()` once that transaction has committed.
   */
  async queue(db: Db, projectId: string, events: PlatformEvent[]): Promise<number> {
    if (events.length === 0) return 0;
    const subscriptions = await webhookStore.active(db, projectId);
    const rows = [];
    for (const e of events) {
      const body = JSON.stringify(e.payload);
      for (const s of subscriptions) {
        if (!(JSON.parse(s.events) as string[]).includes(e.event)) continue;
        rows.push({
          id: crypto.randomUUID(),
          project_id: projectId,
          webhook_id: s.id,
          event: e.event,
          payload: body,
          conversation_id: e.conversationId,
        });
      }
    }
    await webhookStore.insertDeliveries(db, rows, now(), this.options.clock.now());
    return rows.length;
  }

  /** Stores events for delivery and wakes the worker. */
  async emit(projectId: string, events: PlatformEvent[]): Promise<number> {
    const count = await this.db.transaction().execute((tx) => this.queue(tx, projectId, events));
    if (count > 0) this.kick();
    return count;
  }

  kick(): void {
    this.options.kick();
  }

  async listDeliveries(projectId: string, q: DeliveryQuery) {
    if (q.webhook_id !== undefined && !isUuid(q.webhook_id))
      throw invalid("webhook_id", "not a webhook id");
    if (q.status !== undefined && !(deliveryStatuses as readonly string[]).includes(q.status))
      throw invalid("status", `must be one of: ${deliveryStatuses.join(", ")}`);
    let beforeSeq: number | undefined;
    if (q.after !== undefined) {
      const cursor = isUuid(q.after)
        ? await webhookStore.deliveryById(this.db, projectId, q.after.toLowerCase())
        : undefined;
      if (!cursor) throw invalid("after", "not a delivery of this project");
      beforeSeq = cursor.seq;
    }
    const rows = await webhookStore.listDeliveries(this.db, projectId, {
      webhookId: q.webhook_id?.toLowerCase(),
      status: q.status,
      beforeSeq,
      limit: q.limit,
    });
    return {
      data: rows.map((r) => this.renderDelivery(r)),
      meta: { next_cursor: rows.length === q.limit ? rows[rows.length - 1].id : null },
    };
  }
}
