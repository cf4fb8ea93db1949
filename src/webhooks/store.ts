import type { Selectable, Transaction } from "kysely";
import type { Store } from "../store/db.js";
import { claim, type ClaimOptions, type LeaseSpec } from "../store/leases.js";
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

export interface DeliveryClaim extends ClaimOptions {
  holdBackMs: number;
}

/**
 * Deliveries as leased work. Pending delivery `c` may be attempted when it is due and no
 * earlier delivery of the same subscription and conversation is in flight, not yet tried,
 * due itself (it goes first: one claim never takes two of a conversation), or (for at most
 * `holdBackMs` after `c` was queued) waiting for its retry.
 */
export const deliveryLeases: LeaseSpec<"webhook_deliveries", { holdBackMs: number }> = {
  table: "webhook_deliveries",
  id: "id",
  owner: "lease_owner",
  until: "lease_until",
  order: ["seq"],
  eligible: (eb, o) =>
    eb.and([
      eb("c.status", "=", "pending"),
      eb("c.next_attempt_at", "<=", o.now),
      eb.or([
        eb("c.conversation_id", "is", null),
        eb.not(
          eb.exists(
            eb
              .selectFrom("webhook_deliveries as e")
              .select("e.seq")
              .whereRef("e.webhook_id", "=", "c.webhook_id")
              .whereRef("e.conversation_id", "=", "c.conversation_id")
              .where("e.status", "=", "pending")
              .whereRef("e.seq", "<", "c.seq")
              .where((eb) =>
                eb.or([
                  eb("e.lease_until", ">", o.now),
                  eb("e.attempts", "=", 0),
                  eb("e.next_attempt_at", "<=", o.now),
                  eb("c.queued_at", ">", o.now - o.holdBackMs),
                ]),
              ),
          ),
        ),
      ]),
    ]),
};

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

  /** Claims up to `limit` deliveries that may be attempted now, in event order. */
  claim: (db: Store, o: DeliveryClaim): Promise<DeliveryRow[]> => claim(db, deliveryLeases, o),

  /** Writes an attempt's outcome, if this host still holds the delivery. */
  finish: (db: Db, id: string, owner: string, patch: Partial<DeliveryRow>) =>
    db
      .updateTable("webhook_deliveries")
      .set({ ...patch, lease_owner: null, lease_until: null })
      .where("id", "=", id)
      .where("lease_owner", "=", owner)
      .where("status", "=", "pending")
      .execute(),

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
