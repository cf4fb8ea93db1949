import type { Store } from "../store/db.js";

/** Queries for projects and API keys. */
export const projectStore = {
  insertProject: (db: Store, row: { id: string; name: string; created_at: string }) =>
    db.insertInto("projects").values(row).execute(),

  projectById: (db: Store, id: string) =>
    db.selectFrom("projects").selectAll().where("id", "=", id).executeTakeFirst(),

  projectByName: (db: Store, name: string) =>
    db.selectFrom("projects").selectAll().where("name", "=", name).executeTakeFirst(),

  listProjects: (db: Store) =>
    db.selectFrom("projects").selectAll().orderBy("created_at").execute(),

  insertKey: (
    db: Store,
    row: { id: string; project_id: string; key_hash: string; prefix: string; created_at: string },
  ) => db.insertInto("api_keys").values(row).execute(),

  keyByHash: (db: Store, hash: string) =>
    db.selectFrom("api_keys").selectAll().where("key_hash", "=", hash).executeTakeFirst(),

  keysOfProject: (db: Store, projectId: string) =>
    db
      .selectFrom("api_keys")
      .select(["id", "project_id", "prefix", "created_at"])
      .where("project_id", "=", projectId)
      .orderBy("created_at")
      .execute(),

  deleteKey: (db: Store, id: string) =>
    db.deleteFrom("api_keys").where("id", "=", id).returning("key_hash").executeTakeFirst(),
};
