import {
  sql,
  type ColumnDataType,
  type ColumnDefinitionBuilder,
  type Kysely,
  type Migration,
} from "kysely";
import { storeKind } from "./kind.js";

/**
 * Column types per engine. On SQLite each is the type the shipped migrations always used, so
 * the DDL of an existing store is what it was; PostgreSQL gets its own: `bytea` for bytes,
 * `bigint` wherever epoch milliseconds (or seconds past 2038) are kept, identities for the
 * sequence columns, `double precision` for reals.
 */
function typesFor(db: Kysely<unknown>) {
  const pg = storeKind(db) === "postgres";
  return {
    bytes: (pg ? "bytea" : "blob") as ColumnDataType,
    epoch: (pg ? "bigint" : "integer") as ColumnDataType,
    real: (pg ? "double precision" : "real") as ColumnDataType,
    seqType: (pg ? "bigint" : "integer") as ColumnDataType,
    seq: (c: ColumnDefinitionBuilder) =>
      pg ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey().autoIncrement(),
  };
}

/**
 * Schema migrations, applied in key order; never change what one does once it has shipped,
 * add another. Each is written once for both engines, through `typesFor`.
 */
export const migrations: Record<string, Migration> = {
  "0001_core": {
    async up(db: Kysely<unknown>) {
      const t = typesFor(db);
      await db.schema
        .createTable("projects")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("secrets_version", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("api_keys")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id"))
        .addColumn("key_hash", "text", (c) => c.notNull().unique())
        .addColumn("prefix", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("functions")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id"))
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("slug", "text", (c) => c.notNull())
        .addColumn("description", "text")
        .addColumn("code", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("last_deployed_at", "text")
        .addColumn("deploy_error", "text")
        .addColumn("function_type", "text", (c) => c.notNull())
        .addColumn("runtime_config", "text", (c) => c.notNull())
        .addColumn("public_endpoint", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("invoke_response_mode", "text", (c) => c.notNull())
        .addColumn("tool", "text")
        .addColumn("live_deployment_id", "text")
        .addColumn("secrets_version", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addUniqueConstraint("functions_project_slug", ["project_id", "slug"])
        .execute();
      await db.schema
        .createTable("deployments")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("function_id", "text", (c) => c.notNull())
        .addColumn("version", "integer")
        .addColumn("code", "text", (c) => c.notNull())
        .addColumn("module", "text", (c) => c.notNull())
        .addColumn("runtime_config", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("invocations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("function_id", "text", (c) => c.notNull())
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("status_code", "integer", (c) => c.notNull())
        .addColumn("duration_ms", t.real, (c) => c.notNull())
        .addColumn("request_headers", "text", (c) => c.notNull())
        .addColumn("request_body", "text")
        .addColumn("response_body", "text")
        .addColumn("error_message", "text")
        .addColumn("logs", "text", (c) => c.notNull())
        .addColumn("trigger", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("invocations_by_function")
        .on("invocations")
        .columns(["function_id", "created_at"])
        .execute();
      await db.schema
        .createTable("secrets")
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("function_id", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("ciphertext", t.bytes, (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("secrets_pk", ["project_id", "function_id", "name"])
        .execute();
      await db.schema
        .createTable("kv")
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("key", t.bytes, (c) => c.notNull())
        .addColumn("value", t.bytes, (c) => c.notNull())
        .addColumn("metadata", "text")
        .addColumn("expiration", t.epoch)
        .addPrimaryKeyConstraint("kv_pk", ["project_id", "key"])
        .execute();
      await db.schema.createIndex("kv_by_expiration").on("kv").column("expiration").execute();
      await sql`select 1`.execute(db);
    },
  },
  "0010_workflows": {
    async up(db: Kysely<unknown>) {
      const t = typesFor(db);
      await db.schema
        .createTable("workflows")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id"))
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("slug", "text", (c) => c.notNull())
        .addColumn("version_id", "text", (c) => c.notNull())
        .addColumn("triggers", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addUniqueConstraint("workflows_project_slug", ["project_id", "slug"])
        .execute();
      await db.schema
        .createTable("workflow_versions")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("workflow_id", "text", (c) => c.notNull())
        .addColumn("definition", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("workflow_executions")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("workflow_id", "text", (c) => c.notNull())
        .addColumn("version_id", "text", (c) => c.notNull())
        .addColumn("workflow_name", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("vars", "text", (c) => c.notNull())
        .addColumn("context", "text", (c) => c.notNull())
        .addColumn("system", "text", (c) => c.notNull())
        .addColumn("metadata", "text", (c) => c.notNull())
        .addColumn("whatsapp_context", "text")
        .addColumn("conversation_id", "text")
        .addColumn("current_step_id", "text", (c) => c.notNull())
        .addColumn("step_entries", "text", (c) => c.notNull())
        .addColumn("error_details", "text")
        .addColumn("lease_owner", "text")
        .addColumn("due_at", t.epoch)
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("workflow_executions_due")
        .on("workflow_executions")
        .columns(["due_at"])
        .execute();
      await db.schema
        .createIndex("workflow_executions_by_workflow")
        .on("workflow_executions")
        .columns(["workflow_id", "created_at"])
        .execute();
      await db.schema
        .createIndex("workflow_executions_by_conversation")
        .on("workflow_executions")
        .columns(["project_id", "conversation_id", "status"])
        .execute();
      await db.schema
        .createTable("workflow_events")
        .addColumn("seq", t.seqType, t.seq)
        .addColumn("id", "text", (c) => c.notNull().unique())
        .addColumn("execution_id", "text", (c) => c.notNull())
        .addColumn("event_type", "text", (c) => c.notNull())
        .addColumn("step_id", "text")
        .addColumn("edge_label", "text")
        .addColumn("payload", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("workflow_events_by_execution")
        .on("workflow_events")
        .columns(["execution_id", "seq"])
        .execute();
    },
  },
  "0020_webhooks": {
    async up(db: Kysely<unknown>) {
      const t = typesFor(db);
      await db.schema
        .createTable("webhooks")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id"))
        .addColumn("url", "text")
        .addColumn("function_id", "text")
        .addColumn("events", "text", (c) => c.notNull())
        .addColumn("secret_sealed", t.bytes, (c) => c.notNull())
        .addColumn("headers", "text", (c) => c.notNull())
        .addColumn("active", "integer", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("webhooks_by_project")
        .on("webhooks")
        .column("project_id")
        .execute();
      await db.schema
        .createTable("webhook_deliveries")
        .addColumn("seq", t.seqType, t.seq)
        .addColumn("id", "text", (c) => c.notNull().unique())
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("webhook_id", "text", (c) => c.notNull())
        .addColumn("event", "text", (c) => c.notNull())
        .addColumn("payload", "text", (c) => c.notNull())
        .addColumn("conversation_id", "text")
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("attempts", "integer", (c) => c.notNull())
        .addColumn("last_status_code", "integer")
        .addColumn("last_error", "text")
        .addColumn("queued_at", t.epoch, (c) => c.notNull())
        .addColumn("next_attempt_at", t.epoch, (c) => c.notNull())
        .addColumn("lease_owner", "text")
        .addColumn("lease_until", t.epoch)
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addColumn("delivered_at", "text")
        .execute();
      await db.schema
        .createIndex("webhook_deliveries_due")
        .on("webhook_deliveries")
        .columns(["status", "next_attempt_at"])
        .execute();
      await db.schema
        .createIndex("webhook_deliveries_by_conversation")
        .on("webhook_deliveries")
        .columns(["webhook_id", "conversation_id", "status", "seq"])
        .execute();
      await db.schema
        .createIndex("webhook_deliveries_by_project")
        .on("webhook_deliveries")
        .columns(["project_id", "seq"])
        .execute();
      await db.schema
        .createTable("whatsapp_phone_numbers")
        .addColumn("phone_number_id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id"))
        .addColumn("display_phone_number", "text")
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("whatsapp_conversations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("phone_number_id", "text", (c) => c.notNull())
        .addColumn("phone_number", "text", (c) => c.notNull())
        .addColumn("contact_name", "text")
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addUniqueConstraint("whatsapp_conversations_party", [
          "project_id",
          "phone_number_id",
          "phone_number",
        ])
        .execute();
      await db.schema
        .createTable("whatsapp_messages")
        .addColumn("seq", t.seqType, t.seq)
        .addColumn("id", "text", (c) => c.notNull())
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("conversation_id", "text", (c) => c.notNull())
        .addColumn("direction", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("phone_number", "text", (c) => c.notNull())
        .addColumn("content", "text", (c) => c.notNull())
        .addColumn("body", "text", (c) => c.notNull())
        .addColumn("timestamp", "text", (c) => c.notNull())
        .addColumn("origin", "text", (c) => c.notNull())
        .addColumn("dispatch", "text", (c) => c.notNull())
        .addColumn("lease_owner", "text")
        .addColumn("lease_until", t.epoch)
        .addColumn("created_at", "text", (c) => c.notNull())
        .addUniqueConstraint("whatsapp_messages_id", ["project_id", "id"])
        .execute();
      await db.schema
        .createIndex("whatsapp_messages_by_conversation")
        .on("whatsapp_messages")
        .columns(["conversation_id", "seq"])
        .execute();
      await db.schema
        .createIndex("whatsapp_messages_dispatch")
        .on("whatsapp_messages")
        .columns(["dispatch", "seq"])
        .execute();
    },
  },
  "0030_cluster": {
    async up(db: Kysely<unknown>) {
      const t = typesFor(db);
      // What changed, for every host's caches: read by polling, pushed by NOTIFY on PostgreSQL.
      await db.schema
        .createTable("changes")
        .addColumn("seq", t.seqType, t.seq)
        .addColumn("topic", "text", (c) => c.notNull())
        .addColumn("key", "text", (c) => c.notNull())
        .addColumn("at", t.epoch, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("function_strikes")
        .addColumn("function_id", "text", (c) => c.notNull())
        .addColumn("at", t.epoch, (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("function_strikes_by_function")
        .on("function_strikes")
        .columns(["function_id", "at"])
        .execute();
      await db.schema
        .createTable("function_holds")
        .addColumn("function_id", "text", (c) => c.primaryKey())
        .addColumn("held_until", t.epoch, (c) => c.notNull())
        .addColumn("reason", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("cluster_meta")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("value", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("rate_windows")
        .addColumn("key_id", "text", (c) => c.notNull())
        .addColumn("window_start", t.epoch, (c) => c.notNull())
        .addColumn("count", t.epoch, (c) => c.notNull())
        .addPrimaryKeyConstraint("rate_windows_pk", ["key_id", "window_start"])
        .execute();
      await db.schema
        .createIndex("invocations_by_age")
        .on("invocations")
        .column("created_at")
        .execute();
    },
  },
  "0040_database_owners": {
    async up(db: Kysely<unknown>) {
      const t = typesFor(db);
      // One owner host per project database (env.DB), under a lease.
      await db.schema
        .createTable("database_owners")
        .addColumn("project_id", "text", (c) => c.primaryKey())
        .addColumn("host_id", "text", (c) => c.notNull())
        .addColumn("address", "text", (c) => c.notNull())
        .addColumn("until", t.epoch, (c) => c.notNull())
        .execute();
    },
  },
  "0050_versions_schedules": {
    async up(db: Kysely<any>) {
      const t = typesFor(db);
      // Versions: each successful deploy is kept whole (what shapes an invocation), numbered
      // uniquely per function; a failed deploy keeps none.
      await db.schema.alterTable("deployments").addColumn("message", "text").execute();
      await db.schema.alterTable("deployments").addColumn("invoke_response_mode", "text").execute();
      await db.schema
        .alterTable("deployments")
        .addColumn("language", "text", (c) => c.notNull().defaultTo("javascript"))
        .execute();
      await db.schema.alterTable("functions").addColumn("live_version", "integer").execute();
      await db.schema
        .alterTable("functions")
        .addColumn("schedules", "text", (c) => c.notNull().defaultTo("[]"))
        .execute();
      await db.schema.alterTable("invocations").addColumn("version", "integer").execute();
      await sql`update functions set live_version = (select d.version from deployments d where d.id = functions.live_deployment_id)`.execute(
        db,
      );
      await sql`update deployments set invoke_response_mode = (select f.invoke_response_mode from functions f where f.id = deployments.function_id)`.execute(
        db,
      );
      // Deployments of deleted functions, and failed ones, were left behind until now.
      await sql`delete from deployments where function_id not in (select id from functions)`.execute(
        db,
      );
      await sql`delete from deployments where version is null and function_id not in (select id from functions where status = 'deploying')`.execute(
        db,
      );
      await db.schema
        .createIndex("deployments_function_version")
        .on("deployments")
        .columns(["function_id", "version"])
        .unique()
        .execute();
      // One row per schedule tick that some host claimed: the claim is the insert.
      await db.schema
        .createTable("schedule_ticks")
        .addColumn("owner", "text", (c) => c.notNull())
        .addColumn("entry", "text", (c) => c.notNull())
        .addColumn("at", t.epoch, (c) => c.notNull())
        .addColumn("host_id", "text", (c) => c.notNull())
        .addColumn("claimed_at", t.epoch, (c) => c.notNull())
        .addPrimaryKeyConstraint("schedule_ticks_pk", ["owner", "entry", "at"])
        .execute();
      await db.schema
        .createIndex("schedule_ticks_by_age")
        .on("schedule_ticks")
        .column("at")
        .execute();
    },
  },
  "0060_invocation_details": {
    async up(db: Kysely<unknown>) {
      // What was called (the method, and the path after /invoke with its query), and an
      // uncaught error's stack; the function's language (TypeScript is compiled at deploy).
      await db.schema.alterTable("invocations").addColumn("method", "text").execute();
      await db.schema.alterTable("invocations").addColumn("path", "text").execute();
      await db.schema.alterTable("invocations").addColumn("error_stack", "text").execute();
      // A TypeScript version's source map: positions shown to the user name the .ts lines.
      await db.schema.alterTable("deployments").addColumn("source_map", "text").execute();
      await db.schema
        .alterTable("functions")
        .addColumn("language", "text", (c) => c.notNull().defaultTo("javascript"))
        .execute();
    },
  },
};
