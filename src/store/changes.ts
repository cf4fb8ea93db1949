import pg from "pg";
import { isStoreUnavailable, storeKind, type Store } from "./db.js";
import type { Clock } from "./clock.js";

/**
 * What a change names: a function, a project (its secrets), an API key (its hash), a hold, a
 * workflow (its triggers).
 */
export type ChangeTopic = "function" | "project" | "key" | "hold" | "workflow";

export interface Change {
  topic: ChangeTopic;
  key: string;
}

export interface ChangeFeedOptions {
  /** This host (changes it made itself are not applied twice). */
  hostId: string;
  /** Set on PostgreSQL: a connection of its own LISTENs for changes. */
  databaseUrl?: string;
  /** How often the change log is read (the fallback on PostgreSQL). */
  pollMs: number;
  clock: Clock;
  log: (line: string) => void;
}

const channel = "workerbase_changes";
/** Rows of the change log older than this are pruned; a host away longer starts afresh. */
const keepMs = 10 * 60_000;

/**
 * How a change made on one host reaches the caches of every other: each change is a row in
 * the store's change log, written right after the change commits. Every host reads the log
 * past its cursor every `pollMs`; on PostgreSQL, `NOTIFY` pushes each change at once, and the
 * poll is the fallback. On SQLite the log's sequence follows commit order (one writer at a
 * time), so polling alone misses nothing. On PostgreSQL a later sequence number can commit
 * first, so a poll may step past one still in flight: that one still arrives by NOTIFY, which
 * is delivered at its commit. Whenever a host may have missed something (its LISTEN
 * connection dropped, the store was unreachable), it drops all its caches (`onReset`).
 */
export class ChangeFeed {
  private cursor = 0;
  private own = new Set<number>();
  private handlers = new Set<(change: Change) => void | Promise<void>>();
  private resets = new Set<() => void>();
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;
  private listener?: pg.Client;
  private reconnect?: NodeJS.Timeout;
  private stopped = false;
  private lastPruneAt = 0;
  private failing = false;
  /** Null while the store answers; else why it does not (for /healthz and 503s). */
  unavailable: string | null = null;

  constructor(
    private db: Store,
    private o: ChangeFeedOptions,
  ) {}

  /** Calls `handler` with every change another host makes (a poll awaits what it returns). */
  on(handler: (change: Change) => void | Promise<void>): void {
    this.handlers.add(handler);
  }

  /** Calls `handler` when changes may have been missed: drop every cached fact. */
  onReset(handler: () => void): void {
    this.resets.add(handler);
  }

  async start(): Promise<void> {
    const last = await this.db
      .selectFrom("changes")
      .select((eb) => eb.fn.max("seq").as("seq"))
      .executeTakeFirst();
    this.cursor = Number(last?.seq ?? 0);
    if (this.o.databaseUrl && storeKind(this.db) === "postgres") await this.listen(false);
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.reconnect);
    await this.polling;
    await this.listener?.end().catch(() => {});
  }

  /** Records changes for the other hosts (call after the change committed). */
  async publish(changes: Change[]): Promise<void> {
    if (changes.length === 0) return;
    const at = this.o.clock.now();
    const rows = await this.db
      .insertInto("changes")
      .values(changes.map((c) => ({ topic: c.topic, key: c.key, at })))
      .returning("seq")
      .execute();
    for (const row of rows) this.own.add(Number(row.seq));
    if (storeKind(this.db) === "postgres") {
      for (const c of changes)
        await this.db
          .selectNoFrom((eb) =>
            eb
              .fn("pg_notify", [eb.val(channel), eb.val(`${this.o.hostId} ${c.topic} ${c.key}`)])
              .as("n"),
          )
          .execute();
    }
  }

  private schedule() {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.polling = this.poll().finally(() => {
        this.polling = undefined;
        this.schedule();
      });
    }, this.o.pollMs);
    this.timer.unref();
  }

  /** Reads the log past the cursor; applies what others changed. */
  async poll(): Promise<void> {
    try {
      for (;;) {
        const rows = await this.db
          .selectFrom("changes")
          .select(["seq", "topic", "key"])
          .where("seq", ">", this.cursor)
          .orderBy("seq")
          .limit(500)
          .execute();
        for (const row of rows) {
          const seq = Number(row.seq);
          this.cursor = Math.max(this.cursor, seq);
          // This host applied its own changes when it made them.
          if (!this.own.delete(seq))
            await this.apply({ topic: row.topic as ChangeTopic, key: row.key });
        }
        if (rows.length < 500) break;
      }
      const now = this.o.clock.now();
      if (now - this.lastPruneAt > 60_000) {
        this.lastPruneAt = now;
        await this.db
          .deleteFrom("changes")
          .where("at", "<", now - keepMs)
          .execute();
      }
      if (this.failing) {
        this.failing = false;
        this.unavailable = null;
        this.o.log("the store answers again");
        this.reset();
      }
    } catch (err) {
      if (!this.failing)
        this.o.log(`reading the store's change log failed: ${(err as Error).message}`);
      this.failing = true;
      if (isStoreUnavailable(err)) this.unavailable = (err as Error).message;
    }
  }

  private async apply(change: Change): Promise<void> {
    const failed = (err: unknown) =>
      this.o.log(`applying a change (${change.topic}) failed: ${(err as Error).stack}`);
    const pending: Promise<void>[] = [];
    for (const handler of this.handlers) {
      try {
        const result = handler(change);
        if (result) pending.push(result.catch(failed));
      } catch (err) {
        failed(err);
      }
    }
    await Promise.all(pending);
  }

  private reset() {
    for (const handler of this.resets) handler();
  }

  /** A connection of its own that LISTENs; it comes back by itself after a drop. */
  private async listen(afterDrop: boolean): Promise<void> {
    const client = new pg.Client({
      connectionString: this.o.databaseUrl,
      connectionTimeoutMillis: 5000,
      keepAlive: true,
    });
    const dropped = (err?: Error) => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.end().catch(() => {});
      if (this.stopped) return;
      this.o.log(
        `lost the store's change notifications (${err?.message ?? "closed"}); reconnecting`,
      );
      this.unavailable ??= err?.message ?? "the connection closed";
      this.retry(500);
    };
    client.on("error", dropped);
    client.on("end", () => dropped());
    client.on("notification", (msg) => {
      if (msg.channel !== channel || !msg.payload) return;
      const [host, topic, ...rest] = msg.payload.split(" ");
      if (host === this.o.hostId) return;
      void this.apply({ topic: topic as ChangeTopic, key: rest.join(" ") });
    });
    try {
      await client.connect();
      await client.query(`listen ${channel}`);
    } catch (err) {
      client.removeAllListeners();
      client.on("error", () => {});
      await client.end().catch(() => {});
      if (!afterDrop) throw err;
      this.retry(2000);
      return;
    }
    this.listener = client;
    if (afterDrop) {
      // Whatever was notified while the connection was down is lost: start afresh.
      this.unavailable = null;
      this.reset();
    }
  }

  private retry(ms: number) {
    if (this.stopped) return;
    clearTimeout(this.reconnect);
    this.reconnect = setTimeout(() => void this.listen(true), ms);
    this.reconnect.unref();
  }
}
