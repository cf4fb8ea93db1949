import crypto from "node:crypto";
import fs from "node:fs";
import pg from "pg";
import { openStore, type Store, type StoreKind } from "../../src/store/db.js";

/**
 * The PostgreSQL server of this test run: test/run.js chooses it (WORKERBASE_TEST_DATABASE_URL,
 * else the local server, else an embedded one). Run directly with `node --test`, a file falls
 * back to the local server; with none, the test fails: PostgreSQL tests are never skipped.
 */
function serverUrl(): string {
  return process.env.WORKERBASE_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
}

export interface TestDatabase {
  url: string;
  /** Runs SQL on the server's admin database (to end connections, for instance). */
  admin: (text: string, values?: unknown[]) => Promise<pg.QueryResult>;
  drop: () => Promise<void>;
}

const dropped: Array<() => Promise<void>> = [];

/** Creates a fresh database for one test (dropped by `drop`). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const base = serverUrl();
  const name = `wb_test_${process.pid}_${crypto.randomBytes(4).toString("hex")}`;
  // A connection per use, closed after it: an open one would keep the test process alive.
  const admin = async (text: string, values?: unknown[]) => {
    const client = new pg.Client({ connectionString: base, connectionTimeoutMillis: 5000 });
    try {
      await client.connect();
    } catch (err) {
      throw new Error(
        `The PostgreSQL tests need a server: none answers at ${base} (${(err as Error).message}); ` +
          "run them through npm test, which starts an embedded one",
      );
    }
    try {
      return await client.query(text, values as unknown[]);
    } finally {
      await client.end().catch(() => {});
    }
  };
  await admin(`create database ${name}`);
  if (process.env.WORKERBASE_TEST_PG_MARKER)
    fs.appendFileSync(process.env.WORKERBASE_TEST_PG_MARKER, `${name}\n`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  let gone = false;
  const drop = async () => {
    if (gone) return;
    gone = true;
    await admin(`drop database if exists ${name} with (force)`).catch(() => {});
  };
  dropped.push(drop);
  return { url: url.toString(), admin, drop };
}

/** Drops every database this test file created (for an `after` hook). */
export async function dropTestDatabases(): Promise<void> {
  await Promise.all(dropped.splice(0).map((d) => d()));
}

export interface DialectStore {
  kind: StoreKind;
  db: Store;
  close: () => Promise<void>;
}

/**
 * The store on each engine, for tests that must hold on both: SQLite in `dir`, PostgreSQL in
 * a fresh database.
 */
export const dialects: Array<{
  kind: StoreKind;
  open: (dir: string) => Promise<DialectStore>;
}> = [
  {
    kind: "sqlite",
    open: async (dir) => {
      const db = await openStore(dir);
      return { kind: "sqlite", db, close: () => db.destroy() };
    },
  },
  {
    kind: "postgres",
    open: async (dir) => {
      const database = await createTestDatabase();
      const db = await openStore(dir, { databaseUrl: database.url });
      return {
        kind: "postgres",
        db,
        close: async () => {
          await db.destroy();
          await database.drop();
        },
      };
    },
  },
];
