import fs from "node:fs";
import path from "node:path";
import SQLite from "better-sqlite3";
import {
  Kysely,
  Migrator,
  OperationNodeTransformer,
  PostgresDialect,
  SqliteDialect,
  sql,
  type KyselyPlugin,
  type MigrationProvider,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type PrimitiveValueListNode,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
  type ValueNode,
} from "kysely";
import pg from "pg";
import { storeKind } from "./kind.js";
import { migrations } from "./migrations.js";
import type { Database } from "./schema.js";

export type Store = Kysely<Database>;
export { storeKind, type StoreKind } from "./kind.js";

export interface StoreOptions {
  /** `postgres://...`: the cluster's store. Unset: the SQLite file in the data dir. */
  databaseUrl?: string;
  /** Apply pending migrations (the default); `--workers` children leave it to the parent. */
  migrate?: boolean;
  /** Reports a lost connection (the pool recovers by itself). */
  log?: (line: string) => void;
}

/** A failed start the operator can act on, said in one sentence. */
export class StoreStartError extends Error {}

/**
 * Opens the host's store and migrates it: the SQLite file in the data dir, or the PostgreSQL
 * database at `databaseUrl`. Hosts starting together on one PostgreSQL database migrate it
 * once: each waits for a session advisory lock first.
 */
export async function openStore(dataDir: string, options: StoreOptions = {}): Promise<Store> {
  const db = options.databaseUrl
    ? await openPostgres(options.databaseUrl, options.log ?? (() => {}))
    : openSqlite(dataDir);
  if (options.migrate === false) return db;
  try {
    if (storeKind(db) === "postgres") {
      // Kysely's own lock is taken after it creates its bookkeeping tables, and two
      // concurrent `create table if not exists` can fail on PostgreSQL; so lock first.
      await db.connection().execute(async (conn) => {
        await sqlLock(conn, "lock");
        try {
          await migrate(conn as Store);
        } finally {
          await sqlLock(conn, "unlock");
        }
      });
    } else {
      await migrate(db);
    }
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return db;
}

const migrationLockId = 7_370_912_511;

async function sqlLock(conn: Kysely<any>, what: "lock" | "unlock") {
  await sql`select ${sql.raw(`pg_advisory_${what}`)}(${migrationLockId})`.execute(conn);
}

async function migrate(db: Kysely<any>) {
  const provider: MigrationProvider = { getMigrations: async () => migrations };
  const { error } = await new Migrator({
    db,
    provider,
    allowUnorderedMigrations: true,
  }).migrateToLatest();
  if (error) throw error;
}

function openSqlite(dataDir: string): Store {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = new SQLite(path.join(dataDir, "workerbase.db"));
  file.pragma("journal_mode = WAL");
  file.pragma("synchronous = NORMAL");
  file.pragma("busy_timeout = 5000");
  file.pragma("foreign_keys = ON");
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: file }) });
}

/** Where a URL points, for messages (never its password). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return "(an unparsable URL)";
  }
}

// int8 (counts, epoch milliseconds, identities) as numbers, not strings: every value the
// store keeps fits in 2^53. numeric (sums) likewise.
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as "text");
  },
};

async function openPostgres(url: string, log: (line: string) => void): Promise<Store> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StoreStartError("DATABASE_URL is not a URL; give it as postgres://user@host:5432/db");
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:")
    throw new StoreStartError(
      `DATABASE_URL must be a postgres:// URL, got one starting with ${parsed.protocol}//`,
    );
  const where = describeUrl(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    types,
  });
  // Without a listener, an idle client's error (the server restarted) would end the process.
  pool.on("error", (err) => log(`PostgreSQL connection lost (${err.message}); reconnecting`));
  // A connection that drops while checked out (between a transaction's statements) emits
  // 'error' on its client, where the pool listens no more: without this it would end the
  // process. The statement that next uses it fails, and the pool replaces it.
  pool.on("connect", (client) => client.on("error", () => {}));
  try {
    const { rows } = await pool.query<{ version: string }>("select version() as version");
    if (!/^PostgreSQL /.test(String(rows[0]?.version)))
      throw new Error("its version() is not PostgreSQL's");
  } catch (err) {
    await pool.end().catch(() => {});
    throw new StoreStartError(describeStartFailure(err, where));
  }
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool }),
    plugins: [new NoNulCharacters()],
  });
}

/** One sentence for why PostgreSQL at `where` could not be used. */
function describeStartFailure(err: unknown, where: string): string {
  const e = err as Error & { code?: string };
  switch (e.code) {
    case "ECONNREFUSED":
      return `Cannot connect to PostgreSQL at ${where}: the connection was refused; is the server running, and is DATABASE_URL right?`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `Cannot connect to PostgreSQL at ${where}: the host name does not resolve`;
    case "28P01":
    case "28000":
      return `PostgreSQL at ${where} refused the login: ${e.message}`;
    case "3D000":
      return `PostgreSQL at ${where} has no such database: ${e.message}`;
  }
  if (/timeout/i.test(e.message))
    return `Cannot connect to PostgreSQL at ${where}: no answer within 5 s`;
  return `The server at ${where} does not answer as PostgreSQL does (${e.message})`;
}

/** True when `err` says a unique or primary key constraint was violated, on either engine. */
export function isUniqueViolation(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: string }).code;
  return (
    code === "23505" ||
    code === "SQLITE_CONSTRAINT_UNIQUE" ||
    code === "SQLITE_CONSTRAINT_PRIMARYKEY" ||
    /UNIQUE constraint failed/.test(err.message)
  );
}

/**
 * True when `err` means the store cannot be reached now (the connection, not the query). Only
 * errors of the store's own connection count: a client that hung up (ECONNRESET "aborted",
 * no syscall) is not the store.
 */
export function isStoreUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const { code = "", syscall = "" } = err as { code?: string; syscall?: string };
  if (/^(57P0[1-3]|08\d\d\d)$/.test(code)) return true; // shutdowns, connection exceptions
  if (["connect", "getaddrinfo"].includes(syscall)) return true; // refused, unresolvable
  if (["read", "write"].includes(syscall) && ["ECONNRESET", "EPIPE", "ETIMEDOUT"].includes(code))
    return true;
  return /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)|database is locked/.test(
    err.message,
  );
}

/**
 * PostgreSQL's text cannot hold U+0000, which SQLite's can: a request body or console line
 * with one would fail to store. Every string parameter on PostgreSQL carries U+FFFD in its
 * place. (Kysely has no such option; this is its plugin interface.)
 */
class NoNulCharacters implements KyselyPlugin {
  private transformer = new (class extends OperationNodeTransformer {
    protected override transformValue(node: ValueNode): ValueNode {
      const value = typeof node.value === "string" ? clean(node.value) : node.value;
      return super.transformValue(value === node.value ? node : { ...node, value });
    }
    protected override transformPrimitiveValueList(
      node: PrimitiveValueListNode,
    ): PrimitiveValueListNode {
      return super.transformPrimitiveValueList({
        ...node,
        values: node.values.map((v) => (typeof v === "string" ? clean(v) : v)),
      });
    }
  })();

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return this.transformer.transformNode(args.node);
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

function clean(s: string): string {
  return s.includes("\u0000") ? s.replaceAll("\u0000", "\uFFFD") : s;
}

/** The current time as ISO-8601 UTC. */
export function now(): string {
  return new Date().toISOString();
}
