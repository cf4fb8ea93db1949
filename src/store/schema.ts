import type { Generated } from "kysely";

/** Row types of the host's own database. JSON columns hold text; booleans are 0/1. */
export interface ProjectsTable {
  id: string;
  name: string;
  secrets_version: Generated<number>;
  created_at: string;
}

export interface ApiKeysTable {
  id: string;
  project_id: string;
  key_hash: string;
  prefix: string;
  created_at: string;
}

export interface FunctionsTable {
  id: string;
  project_id: string;
  name: string;
  slug: string;
  description: string | null;
  code: string;
  status: "draft" | "deploying" | "deployed" | "error";
  version: number;
  last_deployed_at: string | null;
  deploy_error: string | null;
  function_type: string;
  runtime_config: string;
  public_endpoint: number;
  invoke_response_mode: "passthrough" | "wrapped";
  tool: string | null;
  live_deployment_id: string | null;
  /** The version invocations run (null before the first successful deploy). */
  live_version: number | null;
  /** JSON: `[{cron, timezone, body}]`. */
  schedules: Generated<string>;
  language: Generated<"javascript" | "typescript">;
  secrets_version: Generated<number>;
  created_at: string;
  updated_at: string;
}

export interface DeploymentsTable {
  id: string;
  function_id: string;
  version: number | null;
  /** The code as the user wrote it. */
  code: string;
  /** The ES module actually loaded: the code plus the export Workerbase adds. */
  module: string;
  runtime_config: string;
  /** The response mode the version was deployed with (null: from before versions were kept). */
  invoke_response_mode: "passthrough" | "wrapped" | null;
  language: Generated<string>;
  /** The deploy's message, if it had one. */
  message: string | null;
  /** For TypeScript: the map from the module loaded back to the source. */
  source_map?: string | null;
  created_at: string;
}

export interface InvocationsTable {
  id: string;
  function_id: string;
  project_id: string;
  status: "success" | "failed";
  status_code: number;
  duration_ms: number;
  request_headers: string;
  request_body: string | null;
  response_body: string | null;
  error_message: string | null;
  logs: string;
  trigger: string;
  /** The version the invocation ran (null: a record from before versions). */
  version: number | null;
  method: string | null;
  /** What came after `/invoke`, with the query (`/` for the endpoint itself). */
  path: string | null;
  /** An uncaught error's stack, the user's frames only. */
  error_stack: string | null;
  created_at: string;
}

export interface SecretsTable {
  project_id: string;
  /** Empty string for a project-level secret (SQLite unique keys ignore NULLs). */
  function_id: string;
  name: string;
  type: "text" | "json";
  ciphertext: Buffer;
  created_at: string;
}

export interface KvTable {
  project_id: string;
  key: Buffer;
  value: Buffer;
  metadata: string | null;
  /** Seconds since the epoch, or null for no expiry. */
  expiration: number | null;
}

export interface WorkflowsTable {
  id: string;
  project_id: string;
  name: string;
  slug: string;
  /** The workflow_versions row executions start from. */
  version_id: string;
  triggers: string;
  created_at: string;
  updated_at: string;
}

/** Immutable definitions: an execution keeps the one it started with. */
export interface WorkflowVersionsTable {
  id: string;
  workflow_id: string;
  definition: string;
  created_at: string;
}

export interface WorkflowExecutionsTable {
  id: string;
  project_id: string;
  workflow_id: string;
  version_id: string;
  workflow_name: string;
  status: "running" | "waiting" | "ended" | "failed";
  vars: string;
  context: string;
  system: string;
  metadata: string;
  whatsapp_context: string | null;
  conversation_id: string | null;
  current_step_id: string;
  /** JSON map of step id to how often the execution entered it (the idempotency key's n). */
  step_entries: string;
  error_details: string | null;
  /** The host running it (running) while its lease lasts. */
  lease_owner: string | null;
  /** Epoch ms: a running execution's lease expiry, a waiting one's timeout; null otherwise. */
  due_at: number | null;
  created_at: string;
  updated_at: string;
}

export interface WorkflowEventsTable {
  seq: Generated<number>;
  id: string;
  execution_id: string;
  event_type: string;
  step_id: string | null;
  edge_label: string | null;
  payload: string;
  created_at: string;
}

export interface WebhooksTable {
  id: string;
  project_id: string;
  /** Exactly one of url and function_id is set. */
  url: string | null;
  function_id: string | null;
  /** JSON array of event names. */
  events: string;
  /** The signing secret, sealed with the master key (SecretBox, context `webhook:{id}`). */
  secret_sealed: Buffer;
  /** JSON object of extra request headers. */
  headers: string;
  active: number;
  created_at: string;
  updated_at: string;
}

export interface WebhookDeliveriesTable {
  /** Event order: deliveries about one conversation are made in seq order. */
  seq: Generated<number>;
  /** Also the `X-Idempotency-Key`. */
  id: string;
  project_id: string;
  webhook_id: string;
  event: string;
  /** The exact JSON body that is signed and sent. */
  payload: string;
  conversation_id: string | null;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  /** Epoch ms when the event was queued (the hold-back clock). */
  queued_at: number;
  /** Epoch ms of the next attempt. */
  next_attempt_at: number;
  /** The host making an attempt now, while `lease_until` (epoch ms) lasts. */
  lease_owner: string | null;
  lease_until: number | null;
  created_at: string;
  updated_at: string;
  delivered_at: string | null;
}

export interface WhatsappPhoneNumbersTable {
  phone_number_id: string;
  project_id: string;
  display_phone_number: string | null;
  created_at: string;
}

export interface WhatsappConversationsTable {
  id: string;
  project_id: string;
  phone_number_id: string;
  /** E.164: `+` and digits. */
  phone_number: string;
  contact_name: string | null;
  status: string;
  created_at: string;
  updated_at: string;
}

export interface WhatsappMessagesTable {
  seq: Generated<number>;
  /** Meta's message id (`wamid...`), unique per project. */
  id: string;
  project_id: string;
  conversation_id: string;
  direction: "inbound" | "outbound";
  type: string;
  phone_number: string;
  /** A text rendering of the message. */
  content: string;
  /** The message object as Meta sent it (JSON). */
  body: string;
  /** Meta's timestamp (epoch seconds, as text). */
  timestamp: string;
  origin: string;
  /** Whether workflows have been given this message yet: `pending` until they have. */
  dispatch: "pending" | "done";
  lease_owner: string | null;
  lease_until: number | null;
  created_at: string;
}

/** One change other hosts must hear of (their caches drop what it names). */
export interface ChangesTable {
  seq: Generated<number>;
  /** `function`, `project`, `key` or `hold`. */
  topic: string;
  key: string;
  /** Epoch ms. */
  at: number;
}

/** A process hang or crash counted against a function (epoch ms). */
export interface FunctionStrikesTable {
  function_id: string;
  at: number;
}

/** A function held back until `held_until` (epoch ms). */
export interface FunctionHoldsTable {
  function_id: string;
  held_until: number;
  reason: string;
}

/** Facts of the cluster as a whole, such as the sealed master-key sentinel. */
export interface ClusterMetaTable {
  name: string;
  value: string;
}

/** Requests per API key per minute window, summed over the cluster's hosts. */
export interface RateWindowsTable {
  key_id: string;
  /** Epoch ms of the window's start (a multiple of 60,000). */
  window_start: number;
  count: number;
}

/** The host that owns a project database (env.DB) while its lease lasts. */
export interface DatabaseOwnersTable {
  project_id: string;
  host_id: string;
  /** `host:port` of the owner's cluster channel. */
  address: string;
  /** Epoch ms. */
  until: number;
}

/** A schedule tick some host claimed (owner `function:<id>` or `workflow:<id>`). */
export interface ScheduleTicksTable {
  owner: string;
  entry: string;
  /** The tick's time, epoch ms. */
  at: number;
  host_id: string;
  claimed_at: number;
}

export interface Database {
  projects: ProjectsTable;
  api_keys: ApiKeysTable;
  functions: FunctionsTable;
  deployments: DeploymentsTable;
  invocations: InvocationsTable;
  secrets: SecretsTable;
  kv: KvTable;
  workflows: WorkflowsTable;
  workflow_versions: WorkflowVersionsTable;
  workflow_executions: WorkflowExecutionsTable;
  workflow_events: WorkflowEventsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  whatsapp_phone_numbers: WhatsappPhoneNumbersTable;
  whatsapp_conversations: WhatsappConversationsTable;
  whatsapp_messages: WhatsappMessagesTable;
  changes: ChangesTable;
  function_strikes: FunctionStrikesTable;
  function_holds: FunctionHoldsTable;
  cluster_meta: ClusterMetaTable;
  rate_windows: RateWindowsTable;
  database_owners: DatabaseOwnersTable;
  schedule_ticks: ScheduleTicksTable;
}
