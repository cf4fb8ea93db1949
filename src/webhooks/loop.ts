/** What a loop needs to know about its work. */
export interface ClaimLoopOptions<T> {
  name: string;
  pollMs: number;
  maxInFlight: number;
  /** Claims up to `limit` items from the store (each now leased to this host). */
  claim: (limit: number) => Promise<T[]>;
  run: (item: T) => Promise<void>;
  /** Hands back items whose run did not finish before shutdown. */
  release: (items: T[]) => Promise<void>;
  log: (line: string) => void;
}

/**
 * Background work claimed from the store, never held only in memory: polls on a timer (and at
 * once when kicked), runs what it claimed concurrently up to a limit, and stops cleanly.
 */
export class ClaimLoop<T> {
  private timer?: NodeJS.Timeout;
  private running = new Map<T, Promise<void>>();
  private ticking?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(private o: ClaimLoopOptions<T>) {}

  start(): void {
    this.kick();
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

  private async tick(): Promise<void> {
    const free = this.o.maxInFlight - this.running.size;
    if (free <= 0) return;
    let items: T[];
    try {
      items = await this.o.claim(free);
    } catch (err) {
      if (!this.stopped) this.o.log(`${this.o.name}: claiming failed: ${(err as Error).message}`);
      return;
    }
    for (const item of items) {
      const task = this.o
        .run(item)
        .catch((err) => this.o.log(`${this.o.name}: ${(err as Error).stack ?? err}`))
        .finally(() => {
          this.running.delete(item);
          this.kick();
        });
      this.running.set(item, task);
    }
  }

  /** How many items are being worked on now. */
  inFlight(): number {
    return this.running.size;
  }

  /**
   * Stops claiming, lets running items finish until `deadline` (epoch ms), then releases
   * those still running back to the store, where the next start (or another host) finds them.
   */
  async stop(deadline: number): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    const all = Promise.allSettled([...this.running.values()]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      all,
      new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now())))),
    ]);
    clearTimeout(timer);
    const left = [...this.running.keys()];
    if (left.length > 0) {
      try {
        await this.o.release(left);
      } catch (err) {
        this.o.log(`${this.o.name}: releasing on shutdown failed: ${(err as Error).message}`);
      }
    }
  }
}
