import type { Insertable } from "kysely";
import type { Store } from "../store/db.js";
import type { InvocationsTable } from "../store/schema.js";

export type InvocationInsert = Insertable<InvocationsTable>;

/**
 * Rows per INSERT: 17 columns each, so 17,000 parameters, under PostgreSQL's 65,535 and
 * SQLite's 32,766 per statement.
 */
const insertChunkRows = 1000;

/** Queries for invocation records. */
export const invocationStore = {
  /** Inserts `rows`, in as many statements as the engines' parameter limits need. */
  insertMany: async (db: Store, rows: InvocationInsert[]) => {
    for (let i = 0; i < rows.length; i += insertChunkRows)
      await db
        .insertInto("invocations")
        .values(rows.slice(i, i + insertChunkRows))
        .execute();
  },

  list: (
    db: Store,
    functionId: string,
    status: "success" | "failed" | undefined,
    limit: number,
  ) => {
    let q = db.selectFrom("invocations").selectAll().where("function_id", "=", functionId);
    if (status) q = q.where("status", "=", status);
    return q.orderBy("created_at", "desc").orderBy("id").limit(limit).execute();
  },
};
