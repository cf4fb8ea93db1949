import type { Selectable } from "kysely";
import type { Store } from "../store/db.js";
import { claim, type ClaimOptions, type LeaseSpec } from "../store/leases.js";
import type {
  WhatsappConversationsTable,
  WhatsappMessagesTable,
  WhatsappPhoneNumbersTable,
} from "../store/schema.js";
import type { Db } from "./store.js";

export type PhoneNumberRow = Selectable<WhatsappPhoneNumbersTable>;
export type ConversationRow = Selectable<WhatsappConversationsTable>;
export type MessageRow = Selectable<WhatsappMessagesTable>;

/**
 * Inbound messages as leased work, to be handed to workflows: a message may go when no
 * earlier message of its conversation is still waiting or being handed over (a
 * conversation's messages go in order).
 */
export const inboundLeases: LeaseSpec<"whatsapp_messages"> = {
  table: "whatsapp_messages",
  id: "seq",
  owner: "lease_owner",
  until: "lease_until",
  order: ["seq"],
  eligible: (eb) =>
    eb.and([
      eb("c.dispatch", "=", "pending"),
      eb.not(
        eb.exists(
          eb
            .selectFrom("whatsapp_messages as p")
            .select("p.seq")
            .whereRef("p.conversation_id", "=", "c.conversation_id")
            .where("p.dispatch", "=", "pending")
            .whereRef("p.seq", "<", "c.seq"),
        ),
      ),
    ]),
};

/** Queries for WhatsApp phone numbers, conversations and messages. */
export const whatsappStore = {
  phoneNumber: (db: Db, phoneNumberId: string) =>
    db
      .selectFrom("whatsapp_phone_numbers")
      .selectAll()
      .where("phone_number_id", "=", phoneNumberId)
      .executeTakeFirst(),

  phoneNumbers: (db: Db, projectId: string) =>
    db
      .selectFrom("whatsapp_phone_numbers")
      .selectAll()
      .where("project_id", "=", projectId)
      .orderBy("created_at")
      .execute(),

  insertPhoneNumber: (db: Db, row: PhoneNumberRow) =>
    db.insertInto("whatsapp_phone_numbers").values(row).execute(),

  updatePhoneNumber: (db: Db, phoneNumberId: string, display: string | null) =>
    db
      .updateTable("whatsapp_phone_numbers")
      .set({ display_phone_number: display })
      .where("phone_number_id", "=", phoneNumberId)
      .execute(),

  deletePhoneNumber: (db: Db, projectId: string, phoneNumberId: string) =>
    db
      .deleteFrom("whatsapp_phone_numbers")
      .where("project_id", "=", projectId)
      .where("phone_number_id", "=", phoneNumberId)
      .executeTakeFirst(),

  /** The project called `default`, which owns unregistered phone number ids. */
  defaultProject: (db: Db) =>
    db.selectFrom("projects").select("id").where("name", "=", "default").executeTakeFirst(),

  conversationFor: (db: Db, projectId: string, phoneNumberId: string, phone: string) =>
    db
      .selectFrom("whatsapp_conversations")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("phone_number_id", "=", phoneNumberId)
      .where("phone_number", "=", phone)
      .executeTakeFirst(),

  conversation: (db: Db, projectId: string, id: string) =>
    db
      .selectFrom("whatsapp_conversations")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .executeTakeFirst(),

  conversations: (db: Db, projectId: string, limit: number) =>
    db
      .selectFrom("whatsapp_conversations")
      .selectAll()
      .where("project_id", "=", projectId)
      .orderBy("updated_at", "desc")
      .limit(limit)
      .execute(),

  /**
   * Stores a new conversation unless one for the same party exists; false if one did. Two
   * messages of a new party arriving at once (on PostgreSQL, in concurrent transactions) make
   * one conversation: the later insert waits for the first to commit and then does nothing.
   */
  insertConversation: async (db: Db, row: ConversationRow) => {
    const result = await db
      .insertInto("whatsapp_conversations")
      .values(row)
      .onConflict((oc) => oc.columns(["project_id", "phone_number_id", "phone_number"]).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  },

  touchConversation: (db: Db, id: string, at: string, contactName: string | null) =>
    db
      .updateTable("whatsapp_conversations")
      .set(contactName ? { updated_at: at, contact_name: contactName } : { updated_at: at })
      .where("id", "=", id)
      .execute(),

  messageExists: async (db: Db, projectId: string, id: string) =>
    (await db
      .selectFrom("whatsapp_messages")
      .select("seq")
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .executeTakeFirst()) !== undefined,

  insertMessage: (db: Db, row: Omit<MessageRow, "seq">) =>
    db.insertInto("whatsapp_messages").values(row).execute(),

  /** The latest `limit` messages of a conversation (up to `uptoSeq`), oldest first. */
  latestMessages: async (db: Db, conversationId: string, limit: number, uptoSeq?: number) => {
    let q = db
      .selectFrom("whatsapp_messages")
      .selectAll()
      .where("conversation_id", "=", conversationId)
      .orderBy("seq", "desc")
      .limit(limit);
    if (uptoSeq !== undefined) q = q.where("seq", "<=", uptoSeq);
    return (await q.execute()).reverse();
  },

  /** Claims messages to hand to workflows, at most one per conversation at a time. */
  claimDispatch: (db: Store, o: ClaimOptions): Promise<MessageRow[]> => claim(db, inboundLeases, o),

  finishDispatch: (db: Db, seq: number, owner: string) =>
    db
      .updateTable("whatsapp_messages")
      .set({ dispatch: "done", lease_owner: null, lease_until: null })
      .where("seq", "=", seq)
      .where("lease_owner", "=", owner)
      .execute(),
};
