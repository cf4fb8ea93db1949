import type { Clock } from "./clock.js";

/** What a loop needs to know about its work. */
export interface ClaimLoopOptions<T> {
  name: string;
  pollMs: number;
  maxInFlight: number;
  /** The lease a claim takes; the leases of items in flight are renewed every third of it. */
  leaseMs: number;
  clock: Clock;
  /** Names an item: at most one item of a key runs at a time on this host. */
  key: (item: T) => string | number;
  /**
   * Claims up to `limit` items from the store (each now leased to this host). `ownToo` asks
   * for this host's own items whatever their lease: true until the first claims after start
   * found them all, since what a previous run of this host held died with it.
   */
  claim: (limit: number, at: { now: number; ownToo: boolean }) => Promise<T[]>;
  run: (item: T) => Promise<void>;
  /** Extends the leases of items in flight to `now` plus the lease. */
  renew: (items: T[], now: number) => Promise<unknown>;
  /** Hands back items whose run did not finish before shutdown. */
  release: (items: T[]) => Promise<void>;
  log: (line: string) => void;
}

/**
 * Background work claimed from the store, never held only in memory: polls on a timer (and at
 * once when kicked), runs what it claimed concurrently up to a limit, keeps the leases of what
 * runs renewed, and stops cleanly. The one loop of deliveries, inbound messages and workflow
 * executions.
 */
export class ClaimLoop<T> {
  private timer?: NodeJS.Timeout;
  private renewTimer?: NodeJS.Timeout;
  private running = new Map<string | number, { item: T; task: Promise<void> }>();
  /** Items adopted while one of the same key was running: they run when it ends. */
  private queued = new Map<string | number, T>();
  private ticking?: Promise<void>;
  private renewing?: Promise<void>;
  private again = false;
  private stopped = false;
  private ownToo = true;

  constructor(private o: ClaimLoopOptions<T>) {}

  /** Starts looking for work; resolves once the first look (this host's own items) is done. */
  start(): Promise<void> {
    this.kick();
    return this.ticking ?? Promise.resolve();
  }

  /** Looks for work now (new work was stored, or a slot came free). */
  kick(): void {
    if (this.stopped) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.ticking = this.tick().finally(() => {
      this.ticking = undefined;
      if (this.stopped) return;
      if (this.again) {
        this.again = false;
        this.kick();
      } else {
        this.timer = setTimeout(() => this.kick(), this.o.pollMs);
        this.timer.unref();
      }
    });
  }

  /**
   * Runs an item this host already holds under a lease (it stored the item so, or won it by
   * a conditional update), now and beside the claimed ones: its lease is renewed and handed
   * back on shutdown like theirs. False once the loop has stopped.
   */
  adopt(item: T): boolean {
    if (this.stopped) return false;
    const key = this.o.key(item);
    if (this.running.has(key)) this.queued.set(key, item);
    else this.spawn(key, item);
    return true;
  }

  private failing = false;

  private async tick(): Promise<void> {
    const free = this.o.maxInFlight - this.running.size;
    if (free <= 0) return;
    let items: T[];
    const ownToo = this.ownToo;
    try {
      items = await this.o.claim(free, { now: this.o.clock.now(), ownToo });
    } catch (err) {
      // Said once per outage, not at every poll while the store is away.
      if (!this.stopped && !this.failing)
        this.o.log(`${this.o.name}: claiming failed: ${(err as Error).message}`);
      this.failing = true;
      return;
    }
    if (this.failing) {
      this.failing = false;
      this.o.log(`${this.o.name}: claiming works again`);
    }
    if (ownToo && items.length < free) this.ownToo = false;
    for (const item of items) {
      const key = this.o.key(item);
      // Claimed again while it runs here (its own item, or a lease that lapsed): it already runs.
      if (!this.running.has(key)) this.spawn(key, item);
    }
  }

  private spawn(key: string | number, item: T) {
    const task = this.o
      .run(item)
      .catch((err) => this.o.log(`${this.o.name}: ${(err as Error).stack ?? err}`))
      .finally(() => {
        this.running.delete(key);
        const next = this.queued.get(key);
        this.queued.delete(key);
        if (next !== undefined && !this.stopped) this.spawn(key, next);
        else this.kick();
      });
    this.running.set(key, { item, task });
    if (!this.renewTimer) {
      this.renewTimer = setInterval(() => void this.renew(), this.o.leaseMs / 3);
      this.renewTimer.unref();
    }
  }

  /** Renews the leases of the items in flight now (the timer does this every third of a lease). */
  renew(): Promise<void> {
    if (this.renewing) return this.renewing;
    const items = [...this.running.values()].map((r) => r.item);
    if (items.length === 0) return Promise.resolve();
    this.renewing = this.o
      .renew(items, this.o.clock.now())
      .then(
        () => {},
        (err) => this.o.log(`${this.o.name}: renewing leases failed: ${(err as Error).message}`),
      )
      .finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  /** How many items are being worked on now. */
  inFlight(): number {
    return this.running.size;
  }

  /**
   * Stops claiming, lets running items finish until `deadline` (epoch ms of the wall clock,
   * which a real timer waits for), then releases those still running (and those waiting
   * behind them) back to the store, where the next start or another host finds them.
   */
  async stop(deadline: number): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    const all = Promise.allSettled([...this.running.values()].map((r) => r.task));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      all,
      new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now())))),
    ]);
    clearTimeout(timer);
    clearInterval(this.renewTimer);
    await this.renewing;
    const left = [...[...this.running.values()].map((r) => r.item), ...this.queued.values()];
    this.queued.clear();
    if (left.length > 0) {
      try {
        await this.o.release(left);
      } catch (err) {
        this.o.log(`${this.o.name}: releasing on shutdown failed: ${(err as Error).message}`);
      }
    }
  }
}
