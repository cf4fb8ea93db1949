import type { Expression, ExpressionBuilder, SqlBool } from "kysely";
import { storeKind, type Store } from "../store/db.js";
import type { Clock } from "../store/clock.js";
import type { Database } from "../store/schema.js";

export interface RetentionOptions {
  /** Records older than this go. */
  retentionMs: number;
  /** At most this many records per function are kept, the newest. */
  perFunction: number;
  /** How often to prune. */
  intervalMs: number;
  clock: Clock;
  log: (line: string) => void;
  /** Rows per DELETE, so that no statement holds the table for long. */
  batchRows?: number;
}

/**
 * A record can land after later ones (it is dated when its invocation starts and written
 * after it ends, in a batch); functions with records dated this far before the last prune are
 * looked at again.
 */
const lateMs = 15 * 60_000;
/** Every function is looked at this often, not only those with recent records. */
const fullPassMs = 60 * 60_000;

/**
 * Keeps invocation records from growing without bound: deletes those older than the
 * retention period and, per function, all but the newest `perFunction`, in bounded batches.
 * Every host runs one and none coordinates: the deletes are idempotent, and on PostgreSQL
 * each batch skips rows another host's batch holds, so two hosts pruning at once split the
 * work instead of waiting on (or deadlocking with) each other.
 */
export class InvocationRetention {
  private timer?: NodeJS.Timeout;
  private pruning?: Promise<unknown>;
  private stopped = false;
  /** When the last pass that looked at every function started (0: none yet). */
  private fullPassAt = 0;
  /** When the last pass started. */
  private lastPassAt = 0;

  constructor(
    private db: Store,
    private o: RetentionOptions,
  ) {}

  /** Prunes now and then every `intervalMs`. */
  start(): void {
    if (this.timer || this.stopped) return;
    const tick = (delayMs: number) => {
      this.timer = setTimeout(() => {
        this.pruning = this.prune()
          .catch((err) =>
            this.o.log(`pruning invocation records failed: ${(err as Error).message}`),
          )
          .finally(() => {
            this.pruning = undefined;
            if (!this.stopped) tick(this.o.intervalMs);
          });
      }, delayMs);
      this.timer.unref();
    };
    tick(0);
  }

  /** Stops pruning; a pass in progress ends after its current batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.pruning;
  }

  /** One pass: the expired records, then each function's records past the newest N. */
  async prune(): Promise<{ expired: number; trimmed: number }> {
    const startedAt = this.o.clock.now();
    const cutoff = new Date(startedAt - this.o.retentionMs).toISOString();
    const expired = await this.deleteInBatches((eb) => eb("created_at", "<", cutoff));
    let trimmed = 0;
    for (const functionId of await this.candidates(startedAt)) {
      if (this.stopped) break;
      trimmed += await this.trim(functionId);
    }
    this.lastPassAt = startedAt;
    return { expired, trimmed };
  }

  /**
   * Functions that may hold more than N records. The first pass, and one an hour, counts
   * every function's records through the (function_id, created_at) index; the others look
   * only at functions with a record since the last pass, through the index on created_at,
   * since only a new record can take a function past N.
   */
  private async candidates(startedAt: number): Promise<string[]> {
    if (this.fullPassAt === 0 || startedAt - this.fullPassAt >= fullPassMs) {
      const rows = await this.db
        .selectFrom("invocations")
        .select("function_id")
        .groupBy("function_id")
        .having((eb) => eb.fn.countAll(), ">", this.o.perFunction)
        .execute();
      this.fullPassAt = startedAt;
      return rows.map((r) => r.function_id);
    }
    const since = new Date(this.lastPassAt - lateMs).toISOString();
    const rows = await this.db
      .selectFrom("invocations")
      .select("function_id")
      .distinct()
      .where("created_at", ">=", since)
      .execute();
    return rows.map((r) => r.function_id);
  }

  /** Deletes a function's records past its newest N (newest first, as they are listed). */
  private async trim(functionId: string): Promise<number> {
    const nth = await this.db
      .selectFrom("invocations")
      .select(["id", "created_at"])
      .where("function_id", "=", functionId)
      .orderBy("created_at", "desc")
      .orderBy("id")
      .limit(1)
      .offset(this.o.perFunction - 1)
      .executeTakeFirst();
    if (!nth) return 0;
    return this.deleteInBatches((eb) =>
      eb.and([
        eb("function_id", "=", functionId),
        eb.or([
          eb("created_at", "<", nth.created_at),
          eb.and([eb("created_at", "=", nth.created_at), eb("id", ">", nth.id)]),
        ]),
      ]),
    );
  }

  /** Deletes the records `where` matches, `batchRows` at a time; returns how many went. */
  private async deleteInBatches(
    where: (eb: ExpressionBuilder<Database, "invocations">) => Expression<SqlBool>,
  ): Promise<number> {
    const batchRows = this.o.batchRows ?? 1000;
    const postgres = storeKind(this.db) === "postgres";
    let total = 0;
    while (!this.stopped) {
      let batch = this.db.selectFrom("invocations").select("id").where(where).limit(batchRows);
      if (postgres) batch = batch.forUpdate().skipLocked();
      const result = await this.db
        .deleteFrom("invocations")
        .where("id", "in", batch)
        .executeTakeFirst();
      const deleted = Number(result.numDeletedRows);
      total += deleted;
      if (deleted < batchRows) break;
    }
    return total;
  }
}
