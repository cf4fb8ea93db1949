import { sql, type Kysely, type Migration } from "kysely";

/** Schema migrations, applied in key order; never edit one that has shipped, add another. */
export const migrations: Record<string, Migration> = {
  "0001_core": {
    async up(db: Kysely<unknown>) {
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
        .addColumn("duration_ms", "real", (c) => c.notNull())
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
        .addColumn("ciphertext", "blob", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("secrets_pk", ["project_id", "function_id", "name"])
        .execute();
      await db.schema
        .createTable("kv")
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("key", "blob", (c) => c.notNull())
        .addColumn("value", "blob", (c) => c.notNull())
        .addColumn("metadata", "text")
        .addColumn("expiration", "integer")
        .addPrimaryKeyConstraint("kv_pk", ["project_id", "key"])
        .execute();
      await db.schema.createIndex("kv_by_expiration").on("kv").column("expiration").execute();
      await sql`select 1`.execute(db);
    },
  },
  "0010_workflows": {
    async up(db: Kysely<unknown>) {
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
        .addColumn("due_at", "integer")
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
        .addColumn("seq", "integer", (c) => c.primaryKey().autoIncrement())
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
      await db.schema
        .createTable("webhooks")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id"))
        .addColumn("url", "text")
        .addColumn("function_id", "text")
        .addColumn("events", "text", (c) => c.notNull())
        .addColumn("secret_sealed", "blob", (c) => c.notNull())
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
        .addColumn("seq", "integer", (c) => c.primaryKey().autoIncrement())
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
        .addColumn("queued_at", "integer", (c) => c.notNull())
        .addColumn("next_attempt_at", "integer", (c) => c.notNull())
        .addColumn("lease_owner", "text")
        .addColumn("lease_until", "integer")
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
        .addColumn("seq", "integer", (c) => c.primaryKey().autoIncrement())
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
        .addColumn("lease_until", "integer")
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
};
