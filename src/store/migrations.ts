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
};
