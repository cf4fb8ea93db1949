// The PostgreSQL store under test: each use gets its own database on the server at
// WORKERBASE_BENCH_DATABASE_URL (else the local one), created through `pg` and dropped at the
// end, also when the run fails or is interrupted. With no server answering, the PostgreSQL
// rows are skipped (the benchmark is not a test), said once in one line.
import crypto from "node:crypto";
import fs from "node:fs";
import pg from "pg";

export const benchServerUrl = (): string =>
  process.env.WORKERBASE_BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A database created for this run. */
export interface BenchDatabase {
  name: string;
  /** DATABASE_URL for a Workerbase host. */
  url: string;
  /** The server's version string. */
  version: string;
  /** Transactions committed and rolled back in this database so far (pg_stat_database). */
  transactions: () => Promise<number>;
  /**
   * Pids of the server backends connected to this database, when the server runs on this
   * machine (so their CPU can be read from /proc); empty otherwise.
   */
  backendPids: () => Promise<number[]>;
  /** What one commit costs on this server (in a scratch table of this database). */
  commitProbe: () => Promise<CommitProbe>;
  drop: () => Promise<void>;
}

/** p50s over a few hundred tries, in ms. */
export interface CommitProbe {
  /** `select 1`: one round trip through `pg`. */
  roundTripMs: number;
  /** begin; insert one row; commit, with synchronous_commit on (the default: waits for fsync). */
  durableCommitMs: number;
  /** The same with synchronous_commit off. */
  asyncCommitMs: number;
}

/** Why there are no PostgreSQL rows, once known (so it is said once per run). */
let unreachable: string | undefined;

/** Why no PostgreSQL answered, if a connection was tried and failed. */
export const postgresUnreachable = (): string | undefined => unreachable;
const live = new Set<BenchDatabase>();

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}

const loopback = (host: string) => ["127.0.0.1", "localhost", "::1", "[::1]", ""].includes(host);

/**
 * Creates `wb_bench_<random>` on the server; resolves with null (and logs one line, the first
 * time) when no PostgreSQL answers there.
 */
export async function createBenchDatabase(
  log: (line: string) => void,
  /** Settings of the new database (`alter database ... set`), for every connection to it. */
  settings: Record<string, string> = {},
): Promise<BenchDatabase | null> {
  if (unreachable) return null;
  const base = benchServerUrl();
  const admin = new pg.Client({ connectionString: base, connectionTimeoutMillis: 3000 });
  let version: string;
  try {
    await admin.connect();
    version = String(
      (await admin.query("select current_setting('server_version') as v")).rows[0].v,
    ).split(" ")[0];
  } catch (err) {
    await admin.end().catch(() => undefined);
    unreachable = `no PostgreSQL answers at ${redact(base)} (${(err as Error).message}); set WORKERBASE_BENCH_DATABASE_URL to a server`;
    log(`PostgreSQL store rows skipped: ${unreachable}`);
    return null;
  }
  admin.on("error", () => undefined);
  const name = `wb_bench_${crypto.randomBytes(6).toString("hex")}`;
  await admin.query(`create database ${name}`);
  let dropped = false;
  const url = new URL(base);
  url.pathname = `/${name}`;
  const local = loopback(url.hostname) || url.searchParams.get("host")?.startsWith("/") === true;
  const db: BenchDatabase = {
    name,
    url: url.toString(),
    version,
    transactions: async () =>
      Number(
        (
          await admin.query(
            "select coalesce(sum(xact_commit + xact_rollback), 0) as n from pg_stat_database where datname = $1",
            [name],
          )
        ).rows[0].n,
      ),
    backendPids: async () => {
      if (!local) return [];
      const rows = (
        await admin.query<{ pid: number }>("select pid from pg_stat_activity where datname = $1", [
          name,
        ])
      ).rows;
      return rows
        .map((r) => r.pid)
        .filter((pid) => {
          try {
            return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "postgres";
          } catch {
            return false;
          }
        });
    },
    commitProbe: () => commitProbe(url.toString()),
    drop: async () => {
      if (dropped) return;
      dropped = true;
      live.delete(db);
      try {
        await admin.query(`drop database if exists ${name} with (force)`);
      } catch (err) {
        log(`could not drop the benchmark database ${name}: ${(err as Error).message}`);
      } finally {
        await admin.end().catch(() => undefined);
      }
    },
  };
  live.add(db);
  watchSignals();
  try {
    for (const [setting, value] of Object.entries(settings))
      await admin.query(`alter database ${name} set ${setting} = ${pg.escapeLiteral(value)}`);
  } catch (err) {
    await db.drop();
    throw err;
  }
  return db;
}

let watching = false;

/** On Ctrl-C or SIGTERM the run's databases are dropped before the process ends. */
function watchSignals(): void {
  if (watching) return;
  watching = true;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      void Promise.allSettled([...live].map((d) => d.drop())).then(() =>
        process.kill(process.pid, signal),
      );
    });
  }
}

async function commitProbe(url: string, tries = 300): Promise<CommitProbe> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const p50 = async (run: () => Promise<unknown>) => {
    const times: number[] = [];
    for (let i = 0; i < tries; i++) {
      const started = performance.now();
      await run();
      times.push(performance.now() - started);
    }
    return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
  };
  try {
    await client.query("create table bench_commit_probe (n integer)");
    const commit = async () => {
      await client.query("begin");
      await client.query("insert into bench_commit_probe values (1)");
      await client.query("commit");
    };
    const roundTripMs = await p50(() => client.query("select 1"));
    await client.query("set synchronous_commit = on");
    const durableCommitMs = await p50(commit);
    await client.query("set synchronous_commit = off");
    const asyncCommitMs = await p50(commit);
    await client.query("drop table bench_commit_probe");
    return { roundTripMs, durableCommitMs, asyncCommitMs };
  } finally {
    await client.end();
  }
}
