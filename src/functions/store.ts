import type { Selectable, Updateable, Insertable } from "kysely";
import type { Store } from "../store/db.js";
import type { DeploymentsTable, FunctionsTable } from "../store/schema.js";

export type FunctionRow = Selectable<FunctionsTable>;
export type DeploymentRow = Selectable<DeploymentsTable>;

/** Queries for functions and their deployments. */
export const functionStore = {
  list: (db: Store, projectId: string) =>
    db
      .selectFrom("functions")
      .selectAll()
      .where("project_id", "=", projectId)
      .orderBy("created_at", "desc")
      .execute(),

  count: async (db: Store, projectId: string) =>
    Number(
      (
        await db
          .selectFrom("functions")
          .select((eb) => eb.fn.countAll().as("n"))
          .where("project_id", "=", projectId)
          .executeTakeFirstOrThrow()
      ).n,
    ),

  byId: (db: Store, id: string) =>
    db.selectFrom("functions").selectAll().where("id", "=", id).executeTakeFirst(),

  bySlug: (db: Store, projectId: string, slug: string) =>
    db
      .selectFrom("functions")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("slug", "=", slug)
      .executeTakeFirst(),

  insert: (db: Store, row: Insertable<FunctionsTable>) =>
    db.insertInto("functions").values(row).execute(),

  update: (db: Store, id: string, patch: Updateable<FunctionsTable>) =>
    db.updateTable("functions").set(patch).where("id", "=", id).execute(),

  delete: (db: Store, id: string) => db.deleteFrom("functions").where("id", "=", id).execute(),

  /** Read in full and matched here: JSON paths are SQL that differs per engine. */
  toolNameTaken: async (db: Store, projectId: string, toolName: string, exceptId: string | null) =>
    (
      await db
        .selectFrom("functions")
        .select(["id", "tool"])
        .where("project_id", "=", projectId)
        .where("tool", "is not", null)
        .where("id", "!=", exceptId ?? "")
        .execute()
    ).some((r) => (JSON.parse(r.tool!) as { name?: string }).name === toolName),

  insertDeployment: (db: Store, row: Insertable<DeploymentsTable>) =>
    db.insertInto("deployments").values(row).execute(),

  deployment: (db: Store, id: string) =>
    db.selectFrom("deployments").selectAll().where("id", "=", id).executeTakeFirst(),

  /** Deploys still marked in progress (after a crash). */
  deploying: (db: Store) =>
    db.selectFrom("functions").selectAll().where("status", "=", "deploying").execute(),
};
