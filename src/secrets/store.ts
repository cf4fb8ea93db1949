import { sql } from "kysely";
import type { Store } from "../store/db.js";
import type { SecretsTable } from "../store/schema.js";

/** Function id of a project-level secret. */
export const PROJECT_SCOPE = "";

/** Queries for secrets; values stay sealed here. */
export const secretStore = {
  list: (db: Store, projectId: string, functionId: string) =>
    db
      .selectFrom("secrets")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("function_id", "=", functionId)
      .orderBy("name")
      .execute(),

  /** Project-level secrets plus those of one function. */
  forFunction: (db: Store, projectId: string, functionId: string) =>
    db
      .selectFrom("secrets")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("function_id", "in", [PROJECT_SCOPE, functionId])
      .execute(),

  /** Every secret of a project (all functions and project level). */
  ofProject: (db: Store, projectId: string) =>
    db.selectFrom("secrets").selectAll().where("project_id", "=", projectId).execute(),

  upsert: (db: Store, row: SecretsTable) =>
    db
      .insertInto("secrets")
      .values(row)
      .onConflict((oc) =>
        oc.columns(["project_id", "function_id", "name"]).doUpdateSet({
          type: row.type,
          ciphertext: row.ciphertext,
          created_at: row.created_at,
        }),
      )
      .execute(),

  delete: (db: Store, projectId: string, functionId: string, name: string) =>
    db
      .deleteFrom("secrets")
      .where("project_id", "=", projectId)
      .where("function_id", "=", functionId)
      .where("name", "=", name)
      .executeTakeFirst(),

  bumpFunction: (db: Store, functionId: string) =>
    db
      .updateTable("functions")
      .set({ secrets_version: sql`secrets_version + 1` })
      .where("id", "=", functionId)
      .execute(),

  bumpProject: (db: Store, projectId: string) =>
    db
      .updateTable("projects")
      .set({ secrets_version: sql`secrets_version + 1` })
      .where("id", "=", projectId)
      .execute(),
};
