/** A per-key fixed-window limiter: at most `perMinute` requests per key per minute (0 = off). */
export class RateLimiter {
  private windows = new Map<string, { start: number; count: number }>();

  constructor(private perMinute: number) {}

  /** Null if the request may go ahead, else the 429 message and headers. */
  check(
    keyId: string,
    nowMs = Date.now(),
  ): { message: string; headers: Record<string, string> } | null {
    if (this.perMinute <= 0) return null;
    let window = this.windows.get(keyId);
    if (!window || nowMs - window.start >= 60_000) {
      if (this.windows.size > 100_000) this.windows.clear();
      window = { start: nowMs, count: 0 };
      this.windows.set(keyId, window);
    }
    window.count++;
    const remaining = Math.max(0, this.perMinute - window.count);
    if (window.count <= this.perMinute) return null;
    const retryAfter = Math.max(1, Math.ceil((window.start + 60_000 - nowMs) / 1000));
    return {
      message: `Rate limit of ${this.perMinute} requests per minute exceeded; retry in ${retryAfter} s`,
      headers: {
        "retry-after": String(retryAfter),
        "x-ratelimit-limit": String(this.perMinute),
        "x-ratelimit-remaining": String(remaining),
      },
    };
  }
}
