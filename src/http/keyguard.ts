import net from "node:net";
import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context } from "hono";
import { AppError } from "./errors.js";

export interface Refusal {
  message: string;
  headers: Record<string, string>;
}

/** Most client addresses tracked at once; past it the oldest windows are forgotten first. */
const maxTracked = 100_000;

/**
 * Where wrong keys come from, as counted: an IPv4 address, or the /64 network of an IPv6 one
 * (one machine easily holds a whole /64). Null when the server does not know the address.
 */
export function clientKey(address: string | null | undefined): string | null {
  if (!address) return null;
  const plain = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(plain);
  if (mapped) return mapped[1];
  if (!net.isIPv6(plain)) return plain;
  const [head, tail] = plain.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

/** The counted address of a request served through Hono on Node (null in in-process tests). */
export function clientOf(c: Context): string | null {
  try {
    return clientKey(getConnInfo(c).remote.address);
  } catch {
    return null;
  }
}

/**
 * Counts wrong keys (API or admin) per client address in one-minute windows. An address past
 * `maxPerMinute` is refused until its window ends, whatever key it sends: a right key must not
 * tell a guesser that it has found one. `clock` is injectable so tests need not wait a minute.
 */
export class KeyGuard {
  private windows = new Map<string, { start: number; count: number }>();

  constructor(
    private maxPerMinute: number,
    private clock: () => number = Date.now,
  ) {}

  /** Null while `address` may present keys, else the 429 sentence and headers. */
  refusal(address: string | null): Refusal | null {
    if (this.maxPerMinute <= 0 || address === null) return null;
    const window = this.windows.get(address);
    const now = this.clock();
    if (!window || now - window.start >= 60_000 || window.count < this.maxPerMinute) return null;
    const retryAfter = Math.max(1, Math.ceil((window.start + 60_000 - now) / 1000));
    return {
      message:
        `Too many wrong keys from this address (more than ${this.maxPerMinute} in a minute); ` +
        `retry in ${retryAfter} s`,
      headers: { "retry-after": String(retryAfter) },
    };
  }

  /** Counts one wrong key from `address`. */
  record(address: string | null): void {
    if (this.maxPerMinute <= 0 || address === null) return;
    const now = this.clock();
    let window = this.windows.get(address);
    if (!window || now - window.start >= 60_000) {
      this.windows.delete(address);
      if (this.windows.size >= maxTracked) this.forget(now);
      window = { start: now, count: 0 };
      this.windows.set(address, window);
    }
    window.count++;
  }

  /**
   * Resolves `key` with `lookup`; a key that resolves to nothing counts against `address`.
   * Past the bound it throws the 429 without looking the key up.
   */
  async verify<T>(
    address: string | null,
    key: string | undefined | null,
    lookup: (key: string) => T | null | Promise<T | null>,
  ): Promise<T | null> {
    const refused = this.refusal(address);
    if (refused) throw new AppError("RATE_LIMITED", refused.message, undefined, refused.headers);
    return this.resolve(address, key, lookup);
  }

  /**
   * As `verify`, for the invoke route, which answers 404 alike for unknown and unauthorized:
   * past the bound the key is ignored (null), so a private function still answers 404.
   */
  async verifyOrIgnore<T>(
    address: string | null,
    key: string | undefined | null,
    lookup: (key: string) => T | null | Promise<T | null>,
  ): Promise<T | null> {
    if (this.refusal(address)) return null;
    return this.resolve(address, key, lookup);
  }

  private async resolve<T>(
    address: string | null,
    key: string | undefined | null,
    lookup: (key: string) => T | null | Promise<T | null>,
  ): Promise<T | null> {
    if (!key) return null;
    const found = await lookup(key);
    if (found === null) this.record(address);
    return found;
  }

  /** Drops ended windows, then the oldest ones, to stay under `maxTracked`. */
  private forget(now: number): void {
    for (const [address, window] of this.windows)
      if (now - window.start >= 60_000) this.windows.delete(address);
    for (const address of this.windows.keys()) {
      if (this.windows.size < maxTracked) break;
      this.windows.delete(address);
    }
  }
}
