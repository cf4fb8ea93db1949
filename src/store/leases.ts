import type {
  Expression,
  ExpressionBuilder,
  Kysely,
  Selectable,
  SelectQueryBuilder,
  SqlBool,
} from "kysely";
import { storeKind } from "./kind.js";
import type { Database } from "./schema.js";

/** The tables whose rows are background work, claimed by one host at a time under a lease. */
export type LeasedTable = "webhook_deliveries" | "whatsapp_messages" | "workflow_executions";

type Column<T extends LeasedTable> = keyof Database[T] & string;

/** The store as `eligible` sees it: the candidate rows are the table aliased `c`. */
export type Candidates<T extends LeasedTable> = Database & { c: Database[T] };

/** What every claim says: who claims, when, for how long, and how many at most. */
export interface ClaimOptions {
  owner: string;
  /** Epoch ms, from the host's clock. */
  now: number;
  leaseMs: number;
  limit: number;
  /**
   * Also rows `owner` still holds, whatever their lease says: the work of this host's previous
   * run, which died with it (the host id outlives a restart).
   */
  ownToo?: boolean;
}

/**
 * One kind of leased work: where its rows are, which columns hold the lease, which rows may
 * be claimed (besides their lease being free), and in what order.
 */
export interface LeaseSpec<T extends LeasedTable, E = object> {
  table: T;
  /** A unique column naming a row in renew and release. */
  id: Column<T>;
  /** The holder's host id, null when free. */
  owner: Column<T>;
  /** Epoch ms the lease lasts until, null when free. */
  until: Column<T>;
  /** What else makes row `c` claimable now. */
  eligible: (eb: ExpressionBuilder<Candidates<T>, "c">, o: ClaimOptions & E) => Expression<SqlBool>;
  /** Claimed in this order (ascending); returned in it too, but for the lease's own columns. */
  order: Column<T>[];
}

/** Where a lease is kept: enough to renew or release one. */
export type LeaseColumns<T extends LeasedTable> = Pick<
  LeaseSpec<T>,
  "table" | "id" | "owner" | "until"
>;

// `any`: Kysely cannot type a query over a table named at run time. Each spec's columns are
// typed against its table above, so the queries below use an untyped view of the same store.
type Untyped = Kysely<any>;
type UntypedSelect = SelectQueryBuilder<any, any, any>;

/**
 * Claims up to `limit` eligible rows whose lease is free (or ran out), in one statement: an
 * update of the rows a subquery picks, returning them. On PostgreSQL the subquery locks what
 * it picks and skips rows another claim has locked (FOR UPDATE SKIP LOCKED), so concurrent
 * hosts split the work; SQLite runs one writer at a time, so the statement is atomic as is.
 * Either way no row is ever claimed by two owners at once.
 */
export async function claim<T extends LeasedTable, E>(
  db: Kysely<Database>,
  spec: LeaseSpec<T, E>,
  o: ClaimOptions & E,
): Promise<Selectable<Database[T]>[]> {
  if (o.limit <= 0) return [];
  const k = db as unknown as Untyped;
  const { table, id, owner, until }: Record<keyof LeaseColumns<T>, string> = spec;
  let picked: UntypedSelect = k
    .selectFrom(`${table} as c`)
    .select(`c.${id}`)
    .where((eb) =>
      eb.and([
        eb.or([
          eb(`c.${until}`, "is", null),
          eb(`c.${until}`, "<=", o.now),
          ...(o.ownToo ? [eb(`c.${owner}`, "=", o.owner)] : []),
        ]),
        spec.eligible(eb as unknown as ExpressionBuilder<Candidates<T>, "c">, o),
      ]),
    );
  for (const column of spec.order as string[]) picked = picked.orderBy(`c.${column}`);
  picked = picked.limit(o.limit);
  if (storeKind(db) === "postgres") picked = picked.forUpdate().skipLocked();
  const rows = await k
    .updateTable(table)
    .set({ [owner]: o.owner, [until]: o.now + o.leaseMs })
    .where(id, "in", picked)
    .returningAll()
    .execute();
  // RETURNING promises no order; the lease columns now hold this claim's values.
  const order = (spec.order as string[]).filter((c) => c !== owner && c !== until);
  return (rows as Selectable<Database[T]>[]).sort((a, b) => compare(a, b, order));
}

/** Extends the leases `owner` still holds on `ids` to `until`; returns the ids it still holds. */
export async function renew<T extends LeasedTable>(
  db: Kysely<Database>,
  spec: LeaseColumns<T>,
  ids: ReadonlyArray<string | number>,
  owner: string,
  until: number,
): Promise<Array<string | number>> {
  if (ids.length === 0) return [];
  const { table, id, owner: holder, until: lasts }: Record<keyof LeaseColumns<T>, string> = spec;
  const rows: Array<Record<string, string | number>> = await (db as unknown as Untyped)
    .updateTable(table)
    .set({ [lasts]: until })
    .where(id, "in", ids)
    .where(holder, "=", owner)
    .returning(id)
    .execute();
  return rows.map((r) => r[id]);
}

/** Frees the leases `owner` holds on `ids` at once (work handed back unfinished). */
export async function release<T extends LeasedTable>(
  db: Kysely<Database>,
  spec: LeaseColumns<T>,
  ids: ReadonlyArray<string | number>,
  owner: string,
): Promise<void> {
  if (ids.length === 0) return;
  const { table, id, owner: holder, until }: Record<keyof LeaseColumns<T>, string> = spec;
  await (db as unknown as Untyped)
    .updateTable(table)
    .set({ [holder]: null, [until]: null })
    .where(id, "in", ids)
    .where(holder, "=", owner)
    .execute();
}

function compare(a: object, b: object, columns: string[]): number {
  for (const column of columns) {
    const x = (a as Record<string, unknown>)[column] as string | number | null;
    const y = (b as Record<string, unknown>)[column] as string | number | null;
    if (x === y) continue;
    if (x === null) return -1;
    if (y === null) return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}
