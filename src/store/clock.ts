/**
 * The time as the host's background work sees it (leases, retries, timeouts, retention):
 * injected, so tests advance it instead of sleeping.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /**
   * Calls `listener` whenever the clock jumps (a ManualClock moved by a test), so work timed
   * against it looks again; the system clock never calls it. Returns an unsubscribe.
   */
  onJump?(listener: () => void): () => void;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to (tests). */
export class ManualClock implements Clock {
  constructor(private ms = Date.now()) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
    for (const listener of [...this.listeners]) listener();
  }
  private listeners = new Set<() => void>();
  onJump(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
