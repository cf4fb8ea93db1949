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

  /**
   * Makes a checked deployment the function's next version and live, in one transaction:
   * the number comes from the function's row as the update leaves it (`version + 1`, read
   * back with RETURNING), so two hosts finishing deploys at once get distinct numbers (the
   * row's lock orders them; a unique index on (function_id, version) backs it). Then the
   * versions past the newest `kept` go; the live one is the new one, so it always stays.
   */
  commitVersion: (db: Store, functionId: string, deploymentId: string, kept: number) => {
    const at = new Date().toISOString();
    return db.transaction().execute(async (tx) => {
      const { version } = await tx
        .updateTable("functions")
        .set((eb) => ({
          status: "deployed",
          version: eb("version", "+", 1),
          live_version: eb("version", "+", 1),
          live_deployment_id: deploymentId,
          last_deployed_at: at,
          deploy_error: null,
          updated_at: at,
        }))
        .where("id", "=", functionId)
        .returning("version")
        .executeTakeFirstOrThrow();
      await tx.updateTable("deployments").set({ version }).where("id", "=", deploymentId).execute();
      await tx
        .deleteFrom("deployments")
        .where("function_id", "=", functionId)
        .where("version", "<=", version - kept)
        .where("id", "!=", deploymentId)
        .execute();
      return version;
    });
  },

  /** Deploys still marked in progress (after a crash). */
  deploying: (db: Store) =>
    db.selectFrom("functions").selectAll().where("status", "=", "deploying").execute(),
};
