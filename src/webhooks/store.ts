import { sql, type Selectable, type Transaction } from "kysely";
import type { Store } from "../store/db.js";
import type { Database, WebhookDeliveriesTable, WebhooksTable } from "../store/schema.js";

export type WebhookRow = Selectable<WebhooksTable>;
export type DeliveryRow = Selectable<WebhookDeliveriesTable>;
export type Db = Store | Transaction<Database>;

/** What a delivery insert needs; the rest starts empty. */
export interface DeliveryInsert {
  id: string;
  project_id: string;
  webhook_id: string;
  event: string;
  payload: string;
  conversation_id: string | null;
}

export interface ClaimOptions {
  owner: string;
  now: number;
  leaseMs: number;
  holdBackMs: number;
  limit: number;
}

/**
 * When pending delivery `d` may be attempted now: it is due, nobody holds it, and no earlier
 * delivery of the same subscription and conversation is in flight, not yet tried, or (for at
 * most `holdBackMs` after `d` was queued) waiting for its retry.
 */
function eligible(now: number, holdBackMs: number) {
  return sql<boolean>`d.status = 'pending' and d.next_attempt_at <= ${now}
    and (d.lease_until is null or d.lease_until <= ${now})
    and (d.conversation_id is null or not exists (
      select 1 from webhook_deliveries e
      where e.webhook_id = d.webhook_id and e.conversation_id = d.conversation_id
        and e.status = 'pending' and e.seq < d.seq
        and (e.lease_until > ${now} or e.attempts = 0 or d.queued_at + ${holdBackMs} > ${now})))`;
}

/** Queries for subscriptions and their deliveries. */
export const webhookStore = {
  insert: (db: Db, row: WebhookRow) => db.insertInto("webhooks").values(row).execute(),

  byId: (db: Db, projectId: string, id: string) =>
    db
      .selectFrom("webhooks")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .executeTakeFirst(),

  /** Any project's subscription, for the delivery worker. */
  anyById: (db: Db, id: string) =>
    db.selectFrom("webhooks").selectAll().where("id", "=", id).executeTakeFirst(),

  list: (db: Db, projectId: string) =>
    db
      .selectFrom("webhooks")
      .selectAll()
      .where("project_id", "=", projectId)
      .orderBy("created_at")
      .orderBy("id")
      .execute(),

  active: (db: Db, projectId: string) =>
    db
      .selectFrom("webhooks")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("active", "=", 1)
      .execute(),

  update: (db: Db, id: string, patch: Partial<WebhookRow>) =>
    db.updateTable("webhooks").set(patch).where("id", "=", id).execute(),

  delete: (db: Db, id: string) => db.deleteFrom("webhooks").where("id", "=", id).execute(),

  insertDeliveries: async (db: Db, rows: DeliveryInsert[], at: string, nowMs: number) => {
    if (rows.length === 0) return;
    await db
      .insertInto("webhook_deliveries")
      .values(
        rows.map((r) => ({
          ...r,
          status: "pending" as const,
          attempts: 0,
          last_status_code: null,
          last_error: null,
          queued_at: nowMs,
          next_attempt_at: nowMs,
          lease_owner: null,
          lease_until: null,
          created_at: at,
          updated_at: at,
          delivered_at: null,
        })),
      )
      .execute();
  },

  /** A finished delivery written in one go (the test call's single attempt). */
  insertFinished: (db: Db, row: DeliveryRow | Omit<DeliveryRow, "seq">) =>
    db.insertInto("webhook_deliveries").values(row).execute(),

  /**
   * Claims up to `limit` deliveries that may be attempted now, in event order. Each claim is a
   * conditional update, so two hosts never attempt the same delivery at once.
   */
  claim: async (db: Store, o: ClaimOptions): Promise<DeliveryRow[]> => {
    const candidates = await sql<{ id: string }>`select d.id from webhook_deliveries d
      where ${eligible(o.now, o.holdBackMs)} order by d.seq limit ${o.limit}`.execute(db);
    const claimed: string[] = [];
    for (const { id } of candidates.rows) {
      const result = await sql`update webhook_deliveries as d
        set lease_owner = ${o.owner}, lease_until = ${o.now + o.leaseMs}
        where d.id = ${id} and ${eligible(o.now, o.holdBackMs)}`.execute(db);
      if (Number(result.numAffectedRows ?? 0) === 1) claimed.push(id);
    }
    if (claimed.length === 0) return [];
    return db
      .selectFrom("webhook_deliveries")
      .selectAll()
      .where("id", "in", claimed)
      .orderBy("seq")
      .execute();
  },

  /** Writes an attempt's outcome, if this host still holds the delivery. */
  finish: (db: Db, id: string, owner: string, patch: Partial<DeliveryRow>) =>
    db
      .updateTable("webhook_deliveries")
      .set({ ...patch, lease_owner: null, lease_until: null })
      .where("id", "=", id)
      .where("lease_owner", "=", owner)
      .where("status", "=", "pending")
      .execute(),

  /** Gives deliveries back unattempted (shutdown while an attempt was still running). */
  release: async (db: Db, ids: string[], owner: string): Promise<void> => {
    if (ids.length === 0) return;
    await db
      .updateTable("webhook_deliveries")
      .set({ lease_owner: null, lease_until: null })
      .where("id", "in", ids)
      .where("lease_owner", "=", owner)
      .execute();
  },

  cancelPending: (db: Db, webhookId: string, at: string) =>
    db
      .updateTable("webhook_deliveries")
      .set({
        status: "failed",
        last_error: "Cancelled: the subscription was deleted",
        lease_owner: null,
        lease_until: null,
        updated_at: at,
      })
      .where("webhook_id", "=", webhookId)
      .where("status", "=", "pending")
      .execute(),

  deliveryById: (db: Db, projectId: string, id: string) =>
    db
      .selectFrom("webhook_deliveries")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .executeTakeFirst(),

  /** Newest first; `beforeSeq` continues a listing. */
  listDeliveries: (
    db: Db,
    projectId: string,
    filter: { webhookId?: string; status?: string; beforeSeq?: number; limit: number },
  ) => {
    let q = db
      .selectFrom("webhook_deliveries")
      .selectAll()
      .where("project_id", "=", projectId)
      .orderBy("seq", "desc")
      .limit(filter.limit);
    if (filter.webhookId) q = q.where("webhook_id", "=", filter.webhookId);
    if (filter.status) q = q.where("status", "=", filter.status as DeliveryRow["status"]);
    if (filter.beforeSeq !== undefined) q = q.where("seq", "<", filter.beforeSeq);
    return q.execute();
  },
};
