import type { Insertable } from "kysely";
import type { Store } from "../store/db.js";
import type { InvocationsTable } from "../store/schema.js";

export type InvocationInsert = Insertable<InvocationsTable>;

/** Queries for invocation records. */
export const invocationStore = {
  insertMany: (db: Store, rows: InvocationInsert[]) =>
    db.insertInto("invocations").values(rows).execute(),

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
