import { sql } from "kysely";
import type { Store } from "../store/db.js";
import { systemClock, type Clock } from "../store/clock.js";

const windowMs = 60_000;
/** Rows per statement when syncing (3 parameters each, far under either engine's limit). */
const chunkRows = 500;
/** Past this many keys the local counts are dropped, so a flood of keys cannot grow memory. */
const maxKeys = 100_000;

export interface ClusterOptions {
  /** The cluster's store; without it the limit holds for this process alone. */
  db?: Store;
  clock?: Clock;
  /** How often this host adds its counts to the store and reads the cluster's totals. */
  syncMs?: number;
  log?: (line: string) => void;
}

interface Window {
  /** Epoch ms of the minute it counts (a multiple of 60,000, the same on every host). */
  start: number;
  /** The cluster's total at the last sync, this host's synced requests included. */
  cluster: number;
  /** Requests let through here since then, not yet in the store. */
  pending: number;
  /** Requests being added to the store by the sync in progress. */
  sending: number;
}

/**
 * At most `perMinute` requests per API key per clock minute (0 = off), for the whole cluster.
 * `check` is synchronous and never touches the store: each host counts locally, and every
 * `syncMs` a background sync adds the counts it has not yet sent to `rate_windows` and reads
 * back the cluster's totals for the keys it has seen this minute. A host decides on the
 * cluster's total at its last sync plus its own requests since, so the cluster lets through
 * at most the limit plus what all hosts let through within one sync interval.
 */
export class RateLimiter {
  private windows = new Map<string, Window>();
  private clock: Clock;
  private timer?: NodeJS.Timeout;
  private syncing?: Promise<void>;
  private stopped = false;
  private failing = false;
  private prunedBefore = 0;

  constructor(
    private perMinute: number,
    private cluster: ClusterOptions = {},
  ) {
    this.clock = cluster.clock ?? systemClock;
  }

  /** Null if the request may go ahead, else the 429 message and headers. */
  check(
    keyId: string,
    nowMs = this.clock.now(),
  ): { message: string; headers: Record<string, string> } | null {
    if (this.perMinute <= 0) return null;
    const start = nowMs - (nowMs % windowMs);
    let window = this.windows.get(keyId);
    if (!window || window.start !== start) {
      if (this.windows.size > maxKeys) this.windows.clear();
      window = { start, cluster: 0, pending: 0, sending: 0 };
      this.windows.set(keyId, window);
    }
    const count = window.cluster + window.sending + window.pending + 1;
    if (count <= this.perMinute) {
      window.pending++;
      return null;
    }
    const retryAfter = Math.max(1, Math.ceil((start + windowMs - nowMs) / 1000));
    return {
      message: `Rate limit of ${this.perMinute} requests per minute exceeded; retry in ${retryAfter} s`,
      headers: {
        "retry-after": String(retryAfter),
        "x-ratelimit-limit": String(this.perMinute),
        "x-ratelimit-remaining": "0",
      },
    };
  }

  /** Starts the background sync (nothing runs when the limit is off or there is no store). */
  start(): void {
    if (!this.shared() || this.timer || this.stopped) return;
    const tick = () => {
      this.timer = setTimeout(() => {
        void this.sync().finally(() => {
          if (!this.stopped) tick();
        });
      }, this.cluster.syncMs ?? 1000);
      this.timer.unref();
    };
    tick();
  }

  /** Stops the sync after sending what this host counted. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.syncing;
    await this.sync();
  }

  /**
   * Adds this host's unsent counts to the store and reads the cluster's totals for this
   * minute's keys. Never rejects: a store that fails leaves the local counts to be sent
   * next time.
   */
  sync(): Promise<void> {
    if (!this.shared()) return Promise.resolve();
    this.syncing ??= this.exchange()
      .then(() => {
        if (this.failing) this.log("rate-limit sync works again");
        this.failing = false;
      })
      .catch((err) => {
        if (!this.failing)
          this.log(`rate-limit sync failed (counting per host until it works): ${err.message}`);
        this.failing = true;
      })
      .finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  private shared(): boolean {
    return this.perMinute > 0 && this.cluster.db !== undefined;
  }

  private async exchange(): Promise<void> {
    const db = this.cluster.db!;
    const nowMs = this.clock.now();
    const current = nowMs - (nowMs % windowMs);
    const seen: Array<[string, Window]> = [];
    for (const [keyId, w] of this.windows) {
      // A past minute's counts no longer decide anything.
      if (w.start < current) this.windows.delete(keyId);
      else if (w.start === current) seen.push([keyId, w]);
    }
    const sent = seen.filter(([, w]) => w.pending > 0);
    for (const [, w] of sent) {
      w.sending = w.pending;
      w.pending = 0;
    }
    let done = 0;
    try {
      for (; done < sent.length; done += chunkRows) {
        await db
          .insertInto("rate_windows")
          .values(
            sent
              .slice(done, done + chunkRows)
              .map(([keyId, w]) => ({ key_id: keyId, window_start: w.start, count: w.sending })),
          )
          .onConflict((oc) =>
            oc
              .columns(["key_id", "window_start"])
              .doUpdateSet({ count: sql`rate_windows.count + excluded.count` }),
          )
          .execute();
      }
    } catch (err) {
      // What reached the store counts as this host's own; the rest goes next time.
      sent.forEach(([, w], i) => {
        if (i < done) w.cluster += w.sending;
        else w.pending += w.sending;
        w.sending = 0;
      });
      throw err;
    }
    // Sent: from here on the store's total includes them.
    const totals = new Map<string, number>();
    try {
      for (let i = 0; i < seen.length; i += chunkRows) {
        const rows = await db
          .selectFrom("rate_windows")
          .select(["key_id", "count"])
          .where("window_start", "=", current)
          .where(
            "key_id",
            "in",
            seen.slice(i, i + chunkRows).map(([keyId]) => keyId),
          )
          .execute();
        for (const row of rows) totals.set(row.key_id, Number(row.count));
      }
    } finally {
      for (const [keyId, w] of seen) {
        // Unread (the store failed): what was sent still counts, as this host's own.
        w.cluster = Math.max(totals.get(keyId) ?? 0, w.cluster + w.sending);
        w.sending = 0;
      }
    }
    if (current > this.prunedBefore) {
      // Once a minute per host; the window just ended is kept for hosts whose clocks lag.
      await db
        .deleteFrom("rate_windows")
        .where("window_start", "<", current - windowMs)
        .execute();
      this.prunedBefore = current;
    }
  }

  private log(line: string) {
    this.cluster.log?.(line);
  }
}
