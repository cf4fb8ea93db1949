import { AppError } from "../http/errors.js";
import { systemClock, type Clock } from "../store/clock.js";
import type { Store } from "../store/db.js";
import { kvStore } from "./store.js";

/** Cloudflare Workers KV's limits; env.KV and the data API enforce the same ones. */
export const kvLimits = {
  maxKeyBytes: 512,
  maxValueBytes: 25 * 1024 * 1024,
  maxMetadataBytes: 1024,
  minExpirationTtlSeconds: 60,
  minCacheTtlSeconds: 30,
  maxListKeys: 1000,
  maxBulkKeys: 100,
  /** Bulk reads: total decoded characters of the values returned. */
  maxBulkChars: 25 * 1024 * 1024,
  /** Expired rows deleted per statement of a sweep (keeps each write lock short). */
  sweepBatchRows: 1000,
};

/**
 * A broken KV rule. The message is the one Cloudflare's KV service answers with;
 * `wireStatus` is the status its binding puts in front ("KV PUT failed: 414 ...").
 */
export class KvError extends AppError {
  readonly wireStatus: number;

  constructor(wireStatus: number, message: string, field: string) {
    super(wireStatus === 413 ? "TOO_LARGE" : "INVALID_INPUT", message, [{ field, message }]);
    this.wireStatus = wireStatus;
  }
}

export interface KvValue {
  value: Buffer;
  /** JSON text, or null when the pair has none. */
  metadata: string | null;
  /** Seconds since the epoch, or null. */
  expiration: number | null;
}

export interface KvPutOptions {
  expiration?: number;
  expirationTtl?: number;
  /** JSON text. */
  metadata?: string;
}

export interface KvListOptions {
  prefix?: string;
  limit?: number;
  cursor?: string;
}

export interface KvListKey {
  name: string;
  expiration?: number;
  metadata?: unknown;
}

export interface KvListResult {
  keys: KvListKey[];
  list_complete: boolean;
  cursor?: string;
}

export interface KvBulkOptions {
  type?: string;
  withMetadata?: boolean;
  cacheTtl?: number;
}

/** A value on its way in: bytes already in memory, or a body still to be read. */
export type KvValueSource = Uint8Array | AsyncIterable<Uint8Array> | null;

const loneSurrogate = /\p{Cs}/u;

/** A key's UTF-8 bytes, or a KvError saying which rule it breaks. */
export function keyBytes(key: string, field = "key"): Buffer {
  if (loneSurrogate.test(key)) throw new KvError(400, "Could not URL-decode key name", field);
  if (key === "") throw new KvError(400, "Key names must not be empty", field);
  if (key === "." || key === "..") {
    throw new KvError(400, `Illegal key name "${key}". Please use a different name.`, field);
  }
  return checkKeyLength(Buffer.from(key, "utf8"), field);
}

function checkKeyLength(bytes: Buffer, field: string): Buffer {
  if (bytes.length > kvLimits.maxKeyBytes) {
    throw new KvError(
      414,
      `UTF-8 encoded length of ${bytes.length} exceeds key length limit of ${kvLimits.maxKeyBytes}.`,
      field,
    );
  }
  return bytes;
}

function checkCacheTtl(cacheTtl: number | undefined): void {
  if (
    cacheTtl !== undefined &&
    (Number.isNaN(cacheTtl) || cacheTtl < kvLimits.minCacheTtlSeconds)
  ) {
    throw new KvError(
      400,
      `Invalid cache_ttl of ${cacheTtl}. Cache TTL must be at least ${kvLimits.minCacheTtlSeconds}.`,
      "cacheTtl",
    );
  }
}

/** The absolute expiration (seconds) that put options ask for; a TTL wins over an expiration. */
function expirationOf(options: KvPutOptions, nowMs: number): number | null {
  const now = Math.floor(nowMs / 1000);
  const min = kvLimits.minExpirationTtlSeconds;
  const { expiration, expirationTtl } = options;
  if (expirationTtl !== undefined) {
    if (Number.isNaN(expirationTtl) || expirationTtl <= 0) {
      throw new KvError(
        400,
        `Invalid expiration_ttl of ${expirationTtl}. Please specify integer greater than 0.`,
        "expiration_ttl",
      );
    }
    if (expirationTtl < min) {
      throw new KvError(
        400,
        `Invalid expiration_ttl of ${expirationTtl}. Expiration TTL must be at least ${min}.`,
        "expiration_ttl",
      );
    }
    return now + Math.trunc(expirationTtl);
  }
  if (expiration !== undefined) {
    if (Number.isNaN(expiration) || expiration <= now) {
      throw new KvError(
        400,
        `Invalid expiration of ${expiration}. Please specify integer greater than the current number of seconds since the UNIX epoch.`,
        "expiration",
      );
    }
    if (expiration < now + min) {
      throw new KvError(
        400,
        `Invalid expiration of ${expiration}. Expiration times must be at least ${min} seconds in the future.`,
        "expiration",
      );
    }
    return Math.trunc(expiration);
  }
  return null;
}

function checkMetadata(metadata: string | undefined): string | null {
  if (metadata === undefined) return null;
  const length = Buffer.byteLength(metadata);
  if (length > kvLimits.maxMetadataBytes) {
    throw new KvError(
      413,
      `Metadata length of ${length} exceeds limit of ${kvLimits.maxMetadataBytes}.`,
      "metadata",
    );
  }
  try {
    JSON.parse(metadata);
  } catch {
    throw new KvError(400, "Metadata must be valid JSON", "metadata");
  }
  return metadata;
}

function valueTooLarge(length: number): KvError {
  return new KvError(
    413,
    `Value length of ${length} exceeds limit of ${kvLimits.maxValueBytes}.`,
    "value",
  );
}

/**
 * Reads a value up to the limit. Past it the rest is counted but not kept, so the error names
 * the real length (as Cloudflare's does) without holding more than the limit in memory.
 */
async function readValue(source: KvValueSource, lengthHint?: number): Promise<Buffer> {
  const max = kvLimits.maxValueBytes;
  if (lengthHint !== undefined && lengthHint > max) throw valueTooLarge(lengthHint);
  if (source === null) return Buffer.alloc(0);
  if (source instanceof Uint8Array) {
    if (source.byteLength > max) throw valueTooLarge(source.byteLength);
    return Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  }
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of source) {
    length += chunk.byteLength;
    if (length <= max) chunks.push(chunk);
  }
  if (length > max) throw valueTooLarge(length);
  return Buffer.concat(chunks, length);
}

const utf8 = new TextDecoder();

/** JSON text with every non-ASCII character escaped, so it fits in an HTTP header. */
export function headerSafeJson(json: string): string {
  return json.replace(
    /[\u007f-\uffff]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

/** The KV namespace of every project: its rules and limits, over the shared store. */
export class KvService {
  private sweeper?: NodeJS.Timeout;
  private sweeping?: Promise<unknown>;

  /** `clock` says what time it is for expirations and sweeps (tests move a ManualClock). */
  constructor(
    private db: Store,
    private clock: Clock = systemClock,
  ) {}

  /** A live value, or null when the key is absent or expired. */
  async get(projectId: string, key: string, options: { cacheTtl?: number } = {}) {
    const bytes = keyBytes(key);
    checkCacheTtl(options.cacheTtl);
    const row = await kvStore.get(this.db, projectId, bytes, this.clock.now());
    return row ?? null;
  }

  /**
   * Several keys at once, as env.KV.get([...]) does: a map from each key (first occurrence
   * order) to its value (text or parsed JSON) or null, or to {value, metadata} with metadata.
   */
  async getBulk(projectId: string, keys: string[], options: KvBulkOptions) {
    const { type, withMetadata } = options;
    if (type && type !== "text" && type !== "json") {
      throw new KvError(400, `"${type}" is not a valid type. Use "json" or "text"`, "type");
    }
    if (keys.length > kvLimits.maxBulkKeys) {
      throw new KvError(400, `You can request a maximum of ${kvLimits.maxBulkKeys} keys`, "keys");
    }
    if (keys.length < 1) throw new KvError(400, "You must request a minimum of 1 key", "keys");
    const wanted = keys.map((key) => {
      const bytes = keyBytes(key);
      checkCacheTtl(options.cacheTtl);
      return bytes;
    });
    const rows = await kvStore.getMany(this.db, projectId, wanted, this.clock.now());
    const found = new Map(rows.map((row) => [row.key.toString("latin1"), row]));
    const out = new Map<string, unknown>();
    let chars = 0;
    for (let i = 0; i < keys.length; i++) {
      const row = found.get(wanted[i].toString("latin1"));
      if (!row) {
        out.set(keys[i], null);
        continue;
      }
      const text = utf8.decode(row.value);
      chars += text.length;
      let value: unknown = text;
      if (type === "json") {
        try {
          value = JSON.parse(text);
        } catch {
          throw new KvError(
            400,
            `At least one of the requested keys corresponds to a non-${type} value`,
            "keys",
          );
        }
      }
      const metadata = row.metadata === null ? null : JSON.parse(row.metadata);
      out.set(keys[i], withMetadata ? { value, metadata } : value);
    }
    if (chars > kvLimits.maxBulkChars) {
      throw new KvError(
        413,
        `Total size of request exceeds the limit of ${kvLimits.maxBulkChars / 1024 / 1024}MB`,
        "keys",
      );
    }
    return out;
  }

  /** Stores a value (replacing any), after checking key, expiration, metadata and size. */
  async put(
    projectId: string,
    key: string,
    value: KvValueSource,
    options: KvPutOptions = {},
    lengthHint?: number,
  ): Promise<void> {
    const bytes = keyBytes(key);
    const expiration = expirationOf(options, this.clock.now());
    const metadata = checkMetadata(options.metadata);
    const data = await readValue(value, lengthHint);
    await kvStore.put(this.db, projectId, { key: bytes, value: data, metadata, expiration });
  }

  /** Removes a key; removing an absent key is not an error. */
  async delete(projectId: string, key: string): Promise<void> {
    await kvStore.delete(this.db, projectId, keyBytes(key));
  }

  /** Live keys in byte order, a page at a time; a complete listing has no cursor. */
  async list(projectId: string, options: KvListOptions = {}): Promise<KvListResult> {
    const limit = options.limit ?? kvLimits.maxListKeys;
    if (Number.isNaN(limit) || limit < 1) {
      throw new KvError(
        400,
        `Invalid key_count_limit of ${limit}. Please specify an integer greater than 0.`,
        "limit",
      );
    }
    if (limit > kvLimits.maxListKeys) {
      // Cloudflare's sentence says "less than" although the limit itself is allowed.
      throw new KvError(
        400,
        `Invalid key_count_limit of ${limit}. Please specify an integer less than ${kvLimits.maxListKeys}.`,
        "limit",
      );
    }
    const prefix = checkKeyLength(Buffer.from(options.prefix ?? "", "utf8"), "prefix");
    // Cursors are the last key returned, base64 (as Miniflare makes them).
    const after = options.cursor
      ? Buffer.from(Buffer.from(options.cursor, "base64").toString("utf8"), "utf8")
      : null;
    const rows = await kvStore.list(this.db, projectId, prefix, after, limit + 1, this.clock.now());
    const more = rows.length > limit;
    if (more) rows.length = limit;
    const keys = rows.map((row) => {
      const entry: KvListKey = { name: row.key.toString("utf8") };
      if (row.expiration !== null) entry.expiration = row.expiration;
      if (row.metadata !== null) entry.metadata = JSON.parse(row.metadata);
      return entry;
    });
    if (!more) return { keys, list_complete: true };
    return { keys, list_complete: false, cursor: rows[limit - 1].key.toString("base64") };
  }

  /** Deletes every expired pair, a batch per statement; returns how many went. */
  async sweepExpired(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await kvStore.deleteExpired(this.db, this.clock.now(), kvLimits.sweepBatchRows);
      total += n;
      if (n < kvLimits.sweepBatchRows) return total;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Sweeps expired pairs every `intervalMs` until stop(). */
  startSweeping(intervalMs: number, log: (line: string) => void): void {
    this.sweeper = setInterval(() => {
      this.sweeping ??= this.sweepExpired()
        .catch((err) => log(`KV sweep failed: ${(err as Error).stack}`))
        .finally(() => (this.sweeping = undefined));
    }, intervalMs);
    this.sweeper.unref();
  }

  /** Stops sweeping and waits for a sweep in progress. */
  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    await this.sweeping;
  }
}
