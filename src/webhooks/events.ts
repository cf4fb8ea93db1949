import crypto from "node:crypto";
import type { EventName } from "./schema.js";

/** An event about to be queued for a project's subscriptions. */
export interface PlatformEvent {
  event: EventName;
  payload: Record<string, unknown>;
  /** Deliveries about one conversation are made in order, one at a time per subscription. */
  conversationId: string | null;
}

/** A conversation as events and `whatsapp_context` show it. */
export interface ConversationView {
  id: string;
  phone_number: string;
  status: string;
  created_at: string;
  updated_at: string;
  phone_number_id: string;
  contact_name?: string | null;
}

/** A message as events and `whatsapp_context` show it. */
export interface MessageView {
  id: string;
  timestamp: string;
  type: string;
  phone_number: string;
  content: string;
  text?: { body: string };
  kapso: { direction: string; status: string; origin: string; has_media: boolean; content: string };
}

/** `whatsapp.message.received` (6.2). */
export function messageReceived(
  message: MessageView,
  conversation: ConversationView,
  isNew: boolean,
): PlatformEvent {
  return {
    event: "whatsapp.message.received",
    payload: {
      message,
      conversation,
      is_new_conversation: isNew,
      phone_number_id: conversation.phone_number_id,
    },
    conversationId: conversation.id,
  };
}

/** `whatsapp.conversation.created` (6.2). */
export function conversationCreated(conversation: ConversationView): PlatformEvent {
  return {
    event: "whatsapp.conversation.created",
    payload: { conversation, phone_number_id: conversation.phone_number_id },
    conversationId: conversation.id,
  };
}

/** What the workflows engine tells about an execution that ended or failed. */
export interface ExecutionFinished {
  projectId: string;
  executionId: string;
  workflowId: string;
  workflowName?: string | null;
  status: "ended" | "failed";
  conversationId?: string | null;
  errorDetails?: unknown;
  vars?: unknown;
  at?: string;
}

/** `workflow.execution.ended` / `workflow.execution.failed`. */
export function executionFinished(e: ExecutionFinished): PlatformEvent {
  const event = e.status === "failed" ? "workflow.execution.failed" : "workflow.execution.ended";
  return {
    event,
    payload: {
      event,
      occurred_at: e.at ?? new Date().toISOString(),
      project_id: e.projectId,
      workflow_id: e.workflowId,
      workflow_name: e.workflowName ?? null,
      workflow_execution_id: e.executionId,
      status: e.status,
      whatsapp_conversation_id: e.conversationId ?? null,
      ...(e.status === "failed" ? { error_details: e.errorDetails ?? null } : {}),
    },
    conversationId: e.conversationId ?? null,
  };
}

/** A made-up event of the given kind, for `POST /webhooks/{id}/test`. */
export function sampleEvent(event: EventName, projectId: string): PlatformEvent {
  const at = new Date().toISOString();
  const conversation: ConversationView = {
    id: crypto.randomUUID(),
    phone_number: "+15551234567",
    status: "active",
    created_at: at,
    updated_at: at,
    phone_number_id: "simulator",
  };
  const message: MessageView = {
    id: `wamid.test_${crypto.randomUUID()}`,
    timestamp: String(Math.floor(Date.now() / 1000)),
    type: "text",
    phone_number: conversation.phone_number,
    content: "This is a test event from Workerbase",
    text: { body: "This is a test event from Workerbase" },
    kapso: {
      direction: "inbound",
      status: "received",
      origin: "test",
      has_media: false,
      content: "This is a test event from Workerbase",
    },
  };
  let sample: PlatformEvent;
  if (event === "whatsapp.message.received") sample = messageReceived(message, conversation, false);
  else if (event === "whatsapp.conversation.created") sample = conversationCreated(conversation);
  else {
    sample = executionFinished({
      projectId,
      executionId: crypto.randomUUID(),
      workflowId: crypto.randomUUID(),
      workflowName: "Test workflow",
      status: event === "workflow.execution.failed" ? "failed" : "ended",
      errorDetails: { step_id: "start", message: "This is a test event from Workerbase" },
    });
  }
  // A test is not about a real conversation: it never waits behind one.
  return { ...sample, payload: { ...sample.payload, test: true }, conversationId: null };
}
