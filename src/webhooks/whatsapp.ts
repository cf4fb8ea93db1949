import crypto from "node:crypto";
import { z } from "zod";
import { AppError } from "../http/errors.js";
import { isUuid } from "../http/validate.js";
import { isUniqueViolation, now, type Store } from "../store/db.js";
import {
  conversationCreated,
  messageReceived,
  type ConversationView,
  type MessageView,
  type PlatformEvent,
} from "./events.js";
import type { WebhookService } from "./service.js";
import type { Db } from "./store.js";
import {
  contentOf,
  mediaTypes,
  parseMetaPayload,
  safeEqual,
  toE164,
  verifySignature,
  type Inbound,
} from "./meta.js";
import { whatsappStore, type ConversationRow, type MessageRow } from "./whatsapp-store.js";

export interface WhatsAppOptions {
  appSecret?: string;
  verifyToken?: string;
  /** Latest messages given to workflows in `whatsapp_context`. */
  contextMessages: number;
  /** Called after messages were stored, so the inbound queue hands them to workflows at once. */
  kickInbound: () => void;
}

/** What function steps of a WhatsApp-started workflow get as `whatsapp_context` (5.3). */
export interface WhatsAppContext {
  conversation: ConversationView;
  messages: MessageView[];
}

const phoneNumberId = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1 to 64 letters, digits, '_', '-' or '.'");

/** `{"phone_number": {...}}` of `POST /whatsapp/phone_numbers`. */
export const PhoneNumberInput = z.strictObject({
  phone_number_id: phoneNumberId,
  display_phone_number: z.string().max(32).optional(),
});

/** The body of `POST /whatsapp/simulate`. */
export const SimulateInput = z.strictObject({
  phone_number: z.string().max(32),
  text: z.string().min(1).max(4096),
  phone_number_id: phoneNumberId.optional(),
});

/** A message stored and announced (null when its id was already stored). */
export interface Ingested {
  messageId: string;
  conversationId: string;
  isNewConversation: boolean;
}

/** WhatsApp Cloud API inbound: Meta's webhooks and the simulator, conversations and messages. */
export class WhatsAppService {
  constructor(
    private db: Store,
    private webhooks: WebhookService,
    private o: WhatsAppOptions,
  ) {}

  renderConversation(row: ConversationRow): ConversationView {
    return {
      id: row.id,
      phone_number: row.phone_number,
      status: row.status,
      created_at: row.created_at,
      updated_at: row.updated_at,
      phone_number_id: row.phone_number_id,
      contact_name: row.contact_name,
    };
  }

  renderMessage(row: MessageRow): MessageView {
    const raw = JSON.parse(row.body) as Record<string, any>;
    const hasMedia = mediaTypes.has(row.type);
    return {
      id: row.id,
      timestamp: row.timestamp,
      type: row.type,
      phone_number: row.phone_number,
      content: row.content,
      ...(row.type === "text" ? { text: { body: String(raw.text?.body ?? row.content) } } : {}),
      kapso: {
        direction: row.direction,
        status: "received",
        origin: row.origin,
        has_media: hasMedia,
        content: row.content,
      },
    };
  }

  /** Meta's verification challenge: the challenge to echo when the token matches, else null (403). */
  challenge(
    mode: string | undefined,
    token: string | undefined,
    challenge: string | undefined,
  ): string | null {
    const expected = this.o.verifyToken;
    if (!expected || mode !== "subscribe" || token === undefined || !safeEqual(token, expected))
      return null;
    return challenge ?? "";
  }

  /** Stores and announces the messages of a signed Meta webhook; repeats are ignored. */
  async receiveMeta(raw: Buffer, signature: string | undefined) {
    if (!this.o.appSecret) {
      throw new AppError(
        "UNAVAILABLE",
        "WhatsApp inbound is not configured: set WHATSAPP_APP_SECRET",
      );
    }
    if (!verifySignature(this.o.appSecret, raw, signature))
      throw new AppError("UNAUTHORIZED", "Invalid or missing X-Hub-Signature-256");
    const batches = parseMetaPayload(raw);
    let received = 0;
    let duplicates = 0;
    if (batches.length === 0) return { received, duplicates };
    await this.db.transaction().execute(async (tx) => {
      for (const batch of batches) {
        const projectId = await this.projectFor(tx, batch.phoneNumberId);
        for (const m of batch.messages) {
          const stored = await this.ingest(tx, projectId, batch.phoneNumberId, m);
          if (stored) received++;
          else duplicates++;
        }
      }
    });
    if (received > 0) this.announce();
    return { received, duplicates };
  }

  /** Injects an inbound text message without Meta (local development, tests). */
  async simulate(projectId: string, input: z.infer<typeof SimulateInput>) {
    const phone = toE164(input.phone_number);
    if (!phone) {
      throw new AppError(
        "INVALID_INPUT",
        "Invalid phone_number: must be a phone number in E.164 form, such as +15551234567",
        [{ field: "phone_number", message: "must be + and 3 to 15 digits" }],
      );
    }
    const pnid = input.phone_number_id ?? "simulator";
    const owner = await whatsappStore.phoneNumber(this.db, pnid);
    if (owner && owner.project_id !== projectId) {
      throw new AppError("CONFLICT", `The phone_number_id "${pnid}" belongs to another project`, [
        { field: "phone_number_id", message: "registered by another project" },
      ]);
    }
    const id = `wamid.sim_${crypto.randomUUID().replace(/-/g, "")}`;
    const timestamp = String(Math.floor(Date.now() / 1000));
    const raw = {
      from: phone.slice(1),
      id,
      timestamp,
      type: "text",
      text: { body: input.text },
    };
    const stored = await this.db.transaction().execute((tx) =>
      this.ingest(tx, projectId, pnid, {
        id,
        from: phone,
        timestamp,
        type: "text",
        raw,
        contactName: null,
        origin: "simulator",
      }),
    );
    this.announce();
    return { message_id: stored!.messageId, conversation_id: stored!.conversationId };
  }

  private announce(): void {
    this.webhooks.kick();
    this.o.kickInbound();
  }

  private async projectFor(db: Db, pnid: string): Promise<string> {
    const registered = await whatsappStore.phoneNumber(db, pnid);
    if (registered) return registered.project_id;
    const fallback = await whatsappStore.defaultProject(db);
    if (!fallback) throw new AppError("INTERNAL", "The default project is missing");
    return fallback.id;
  }

  /**
   * Stores one message (and its conversation when new) and queues its events, inside the
   * caller's transaction. Null when the message id is already stored (Meta repeats itself).
   */
  private async ingest(
    tx: Db,
    projectId: string,
    pnid: string,
    m: Inbound,
  ): Promise<Ingested | null> {
    const phone = toE164(m.from);
    if (!phone) return null;
    if (await whatsappStore.messageExists(tx, projectId, m.id)) return null;
    const at = now();
    let conversation = await whatsappStore.conversationFor(tx, projectId, pnid, phone);
    let isNew = false;
    if (!conversation) {
      const fresh = {
        id: crypto.randomUUID(),
        project_id: projectId,
        phone_number_id: pnid,
        phone_number: phone,
        contact_name: m.contactName,
        status: "active",
        created_at: at,
        updated_at: at,
      };
      isNew = await whatsappStore.insertConversation(tx, fresh);
      // Another message of this party made it meanwhile: that one is the conversation.
      conversation = isNew
        ? fresh
        : await whatsappStore.conversationFor(tx, projectId, pnid, phone);
    }
    if (!conversation) throw new Error("the conversation vanished while storing a message");
    if (!isNew) {
      await whatsappStore.touchConversation(tx, conversation.id, at, m.contactName);
      conversation = {
        ...conversation,
        updated_at: at,
        contact_name: m.contactName ?? conversation.contact_name,
      };
    }
    const row: Omit<MessageRow, "seq"> = {
      id: m.id,
      project_id: projectId,
      conversation_id: conversation.id,
      direction: "inbound",
      type: m.type,
      phone_number: phone,
      content: contentOf(m.raw).slice(0, 65536),
      body: JSON.stringify(m.raw),
      timestamp: m.timestamp,
      origin: m.origin,
      dispatch: "pending",
      lease_owner: null,
      lease_until: null,
      created_at: at,
    };
    await whatsappStore.insertMessage(tx, row);
    const view = this.renderConversation(conversation);
    const events: PlatformEvent[] = [];
    if (isNew) events.push(conversationCreated(view));
    events.push(messageReceived(this.renderMessage({ ...row, seq: 0 }), view, isNew));
    await this.webhooks.queue(tx, projectId, events);
    return { messageId: m.id, conversationId: conversation.id, isNewConversation: isNew };
  }

  /**
   * The conversation and its latest messages (up to the one being handled, `uptoSeq`),
   * oldest first, as workflows get them.
   */
  async context(
    projectId: string,
    conversationId: string,
    uptoSeq?: number,
  ): Promise<WhatsAppContext | null> {
    const conversation = await whatsappStore.conversation(this.db, projectId, conversationId);
    if (!conversation) return null;
    const messages = await whatsappStore.latestMessages(
      this.db,
      conversationId,
      this.o.contextMessages,
      uptoSeq,
    );
    return {
      conversation: this.renderConversation(conversation),
      messages: messages.map((m) => this.renderMessage(m)),
    };
  }

  /** Registers a phone number id to the project; an id registered elsewhere is a 409. */
  async registerPhoneNumber(projectId: string, input: z.infer<typeof PhoneNumberInput>) {
    const display = input.display_phone_number ?? null;
    const existing = await whatsappStore.phoneNumber(this.db, input.phone_number_id);
    if (existing && existing.project_id !== projectId) {
      throw new AppError(
        "CONFLICT",
        `The phone_number_id "${input.phone_number_id}" is registered by another project`,
        [{ field: "phone_number_id", message: "already registered" }],
      );
    }
    if (existing) {
      await whatsappStore.updatePhoneNumber(this.db, existing.phone_number_id, display);
      return { created: false, row: { ...existing, display_phone_number: display } };
    }
    const row = {
      phone_number_id: input.phone_number_id,
      project_id: projectId,
      display_phone_number: display,
      created_at: now(),
    };
    try {
      await whatsappStore.insertPhoneNumber(this.db, row);
    } catch (err) {
      if (isUniqueViolation(err)) {
        throw new AppError(
          "CONFLICT",
          `The phone_number_id "${row.phone_number_id}" is already registered`,
        );
      }
      throw err;
    }
    return { created: true, row };
  }

  phoneNumbers(projectId: string) {
    return whatsappStore.phoneNumbers(this.db, projectId);
  }

  async removePhoneNumber(projectId: string, pnid: string): Promise<void> {
    const result = await whatsappStore.deletePhoneNumber(this.db, projectId, pnid);
    if (Number(result.numDeletedRows) === 0)
      throw new AppError("NOT_FOUND", "Phone number not found");
  }

  async conversations(projectId: string, limit: number) {
    const rows = await whatsappStore.conversations(this.db, projectId, limit);
    return rows.map((r) => this.renderConversation(r));
  }

  async messages(projectId: string, conversationId: string, limit: number) {
    const conversation = isUuid(conversationId)
      ? await whatsappStore.conversation(this.db, projectId, conversationId.toLowerCase())
      : undefined;
    if (!conversation) throw new AppError("NOT_FOUND", "Conversation not found");
    const rows = await whatsappStore.latestMessages(this.db, conversation.id, limit);
    return rows.map((r) => this.renderMessage(r));
  }
}
