import { PostgresAdapter, type Kysely } from "kysely";

export type StoreKind = "sqlite" | "postgres";

/** Which engine a store (or a transaction of one) runs on. */
export function storeKind(db: Kysely<any>): StoreKind {
  return db.getExecutor().adapter instanceof PostgresAdapter ? "postgres" : "sqlite";
}
