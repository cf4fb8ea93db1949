// The benchmark: Workerbase beside bare workerd, workerd + Worker Loader and Miniflare, same
// handlers, same load generator, same machine, one run; hello and echo also on a second
// Workerbase host whose store is PostgreSQL, with its transactions counted around a warm run.
// `runBench` returns every number; bench/run.ts prints and saves them,
// test/bench/smoke.test.ts runs it with tiny counts.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { defaults } from "../src/host/config.js";
import {
  miniflareVersions,
  startBareWorkerd,
  startLoaderWorkerd,
  startMiniflare,
  workerdBinary,
  type Target,
} from "./baselines.js";
import {
  asModule,
  d1SetupHandler,
  echoBody,
  expected,
  handlers,
  kvKey,
  kvValue,
} from "./handlers.js";
import type { Scenario } from "./handlers.js";
import {
  coldStart,
  deployToFirstResponse,
  memory,
  type ColdResult,
  type DeployResult,
  type MemoryResult,
} from "./lifecycle.js";
import { LoadGenerator, type LoadRequest } from "./loadgen.js";
import { timeOps, type OpResult } from "./ops.js";
import { createBenchDatabase, postgresUnreachable, type BenchDatabase } from "./postgres.js";
import {
  closeConnections,
  deploy,
  removeDataDirs,
  startPlatform,
  timedRequest,
  type Platform,
} from "./platform.js";
import { startTrivialServer } from "./trivial.js";
import { combine, measure, type CellResult, type Timing } from "./warm.js";

export interface BenchOptions {
  warmupMs: number;
  durationMs: number;
  /** Each cell is measured this many times, interleaved with the others; medians reported. */
  rounds: number;
  concurrencies: number[];
  /** Operations per invocation when timing KV and D1 operations, and how long each runs. */
  opsPerCall: number;
  opsDurationMs: number;
  coldFunctions: number;
  deployFunctions: number;
  memorySteps: number[];
  memoryProjects: number;
  memoryParallel: number;
  isolateSample: number;
  /** Pause before each memory reading (heartbeats report isolates, drained processes exit). */
  memorySettleMs: number;
  /**
   * Also measure hello and echo on a host whose store is PostgreSQL, in a database of its own
   * (default on; skipped with one line when no server answers; see bench/postgres.ts).
   */
  postgres?: boolean;
  /**
   * Count that host's transactions around a warm run (pg_stat_database): the idle wait before
   * each reading, because backends report their counts up to 10 s late. Unset or 0: no count.
   */
  pgStatsSettleMs?: number;
  log: (line: string) => void;
}

/** The target name of the host on PostgreSQL (the one on SQLite keeps "Workerbase"). */
export const postgresTarget = "Workerbase (PostgreSQL store)";

/** PostgreSQL transactions of the host on PostgreSQL around a warm hello run. */
export interface HotPathCount {
  connections: number;
  loadMs: number;
  /** Answered invocations in the window (up to `connections` more were in flight at its end). */
  invocations: number;
  /** Transactions of an idle window before the load (background loops), and its length. */
  idleMs: number;
  idleTransactions: number;
  /** From just before the load to the reading after it (load, then the settle wait). */
  windowMs: number;
  transactions: number;
  perInvocation: number;
  /** Transactions minus the idle rate over the window, per invocation. */
  beyondIdlePerInvocation: number;
  /** The invocation records are written in batches every 100 ms: at most this many. */
  recordBatchesAtMost: number;
}

export const fullRun: Omit<BenchOptions, "log"> = {
  warmupMs: 1500,
  durationMs: 5000,
  rounds: 3,
  concurrencies: [1, 16],
  opsPerCall: 50,
  opsDurationMs: 4000,
  coldFunctions: 50,
  deployFunctions: 50,
  memorySteps: [1000, 10_000],
  memoryProjects: 20,
  memoryParallel: 8,
  isolateSample: 200,
  memorySettleMs: 3000,
  postgres: true,
  pgStatsSettleMs: 11_000,
};

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  node: string;
  workerd: string;
  miniflare: string;
  miniflareWorkerd: string;
  kernel: string;
}

export interface BenchResults {
  date: string;
  machine: Machine;
  options: Omit<BenchOptions, "log">;
  loadBefore: number[];
  loadAfter: number[];
  /** The load generator against the trivial server: its own ceiling. */
  loadgenCeiling: CellResult[];
  warm: CellResult[];
  /**
   * Why a scenario could not run on Workerbase (for instance env.DB not built yet); `postgres`:
   * why there are no PostgreSQL store rows.
   */
  unavailable: Record<string, string>;
  /** The PostgreSQL server of the PostgreSQL store rows (its version), if they ran. */
  postgres: { version: string } | null;
  hotPath: HotPathCount | null;
  ops: OpResult[];
  cold: ColdResult;
  deploy: DeployResult;
  memory: MemoryResult;
  seconds: number;
}

const workerdPackage = createRequire(import.meta.url)("workerd/package.json") as {
  version: string;
};

export function machine(): Machine {
  const cpu = fs.readFileSync("/proc/cpuinfo", "utf8");
  const mf = miniflareVersions();
  return {
    cpuModel: /model name\s*:\s*(.*)/.exec(cpu)?.[1] ?? os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    memoryBytes: os.totalmem(),
    node: process.version,
    workerd: `${workerdPackage.version} (${String(execFileSync(workerdBinary, ["--version"])).trim()})`,
    miniflare: mf.miniflare,
    miniflareWorkerd: mf.workerd,
    kernel: os.release(),
  };
}

/** The request each scenario sends (paths differ per target, so only the shape here). */
function requestFor(
  scenario: Scenario,
  path: string,
  headers: Record<string, string>,
): LoadRequest {
  if (scenario === "echo") {
    return {
      method: "POST",
      path,
      headers: { ...headers, "content-type": "application/json" },
      body: echoBody,
    };
  }
  return { method: "GET", path, headers };
}

interface Subject {
  target: Target;
  request: LoadRequest;
  groups?: Record<string, () => number[]>;
  /** Runs before each measurement of this subject. */
  before?: () => Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The transactions of the host on PostgreSQL during a warm hello run, from pg_stat_database:
 * an idle window first (what the background loops do anyway), then the load; each reading
 * after `settleMs` of quiet, so that every transaction before it has been reported.
 */
async function countTransactions(
  loadgen: LoadGenerator,
  db: BenchDatabase,
  subject: Subject,
  connections: number,
  loadMs: number,
  settleMs: number,
): Promise<HotPathCount> {
  const idleMs = 10_000;
  await sleep(settleMs);
  const r0 = await db.transactions();
  await sleep(idleMs);
  const r1 = await db.transactions();
  const began = Date.now();
  const load = await loadgen.run({
    port: subject.target.port,
    request: subject.request,
    connections,
    warmupMs: 0,
    durationMs: loadMs,
  });
  await sleep(settleMs);
  const r2 = await db.transactions();
  const windowMs = Date.now() - began;
  const transactions = r2 - r1;
  const idleRate = (r1 - r0) / idleMs;
  return {
    connections,
    loadMs,
    invocations: load.requests,
    idleMs,
    idleTransactions: r1 - r0,
    windowMs,
    transactions,
    perInvocation: transactions / load.requests,
    beyondIdlePerInvocation: (transactions - idleRate * windowMs) / load.requests,
    recordBatchesAtMost: Math.ceil(loadMs / 100) + 1,
  };
}

/** Checks once that a subject answers its scenario correctly before it is measured. */
async function verify(scenario: Scenario, subject: Subject): Promise<void> {
  const r = subject.request;
  const res = await timedRequest(subject.target.port, r.method, r.path, r.headers, r.body);
  if (res.status !== 200 || !expected[scenario](res.body)) {
    throw new Error(
      `${subject.target.name} answered ${scenario} wrongly: ${res.status} ${res.body.slice(0, 300)}`,
    );
  }
}

/** Runs every scenario; every process it starts is stopped before it resolves or rejects. */
export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const { log } = options;
  const began = Date.now();
  const timing: Timing = { warmupMs: options.warmupMs, durationMs: options.durationMs };
  const loadBefore = os.loadavg();
  const stops: (() => Promise<void>)[] = [];
  const loadgen = new LoadGenerator();
  stops.push(() => loadgen.stop());
  let platform: Platform | undefined;
  let onPostgres: Platform | undefined;
  let database: BenchDatabase | null = null;
  try {
    log("starting the trivial server, bare workerd, workerd + loader, Miniflare and Workerbase");
    const trivial = await startTrivialServer();
    stops.push(trivial.stop);
    const subjects: Record<Scenario, Subject[]> = { hello: [], echo: [], kv: [], d1: [] };
    for (const scenario of ["hello", "echo"] as const) {
      const bare = await startBareWorkerd(handlers[scenario]);
      stops.push(bare.stop);
      const loader = await startLoaderWorkerd(handlers[scenario]);
      stops.push(loader.stop);
      subjects[scenario].push(
        { target: bare, request: requestFor(scenario, "/", {}) },
        { target: loader, request: requestFor(scenario, "/", {}) },
      );
    }
    for (const scenario of ["hello", "echo", "kv", "d1"] as const) {
      const mf = await startMiniflare(asModule(handlers[scenario]));
      stops.push(mf.stop);
      subjects[scenario].push({ target: mf, request: requestFor(scenario, "/", {}) });
    }

    platform = await startPlatform();
    const p = platform;
    const unavailable: Record<string, string> = {};
    await p.api("PUT", `/kv/values/${kvKey}`, kvValue);
    const setup = await deploy(p, "d1-setup", d1SetupHandler);
    const seeded = await timedRequest(p.port, "GET", p.invokePath(setup), { "x-api-key": p.key });
    if (seeded.status !== 200) {
      unavailable.d1 = `env.DB is not available on this build (${seeded.status}: ${seeded.body.slice(0, 200)})`;
      log(`D1: ${unavailable.d1}`);
    }
    const groups = { host: () => [p.hostPid()], workerd: p.workerdPids };
    for (const scenario of ["hello", "echo", "kv", "d1"] as const) {
      if (unavailable[scenario]) continue;
      const id = await deploy(p, `bench-${scenario}`, handlers[scenario]);
      subjects[scenario].push({
        target: p.target,
        request: requestFor(scenario, p.invokePath(id), { "x-api-key": p.key }),
        groups,
      });
    }

    if (options.postgres === false) unavailable.postgres = "not requested in this run";
    else {
      database = await createBenchDatabase(log);
      if (!database) unavailable.postgres = `skipped: ${postgresUnreachable()}`;
    }
    if (database) {
      const db = database;
      stops.push(() => db.drop());
      try {
        log(`starting Workerbase on PostgreSQL ${db.version} (database ${db.name})`);
        onPostgres = await startPlatform({ databaseUrl: db.url, name: postgresTarget });
        const q = onPostgres;
        stops.push(() => q.target.stop());
        let backends: number[] = [];
        const pgGroups = {
          host: () => [q.hostPid()],
          workerd: q.workerdPids,
          postgres: () => backends,
        };
        for (const scenario of ["hello", "echo"] as const) {
          const id = await deploy(q, `bench-${scenario}`, handlers[scenario]);
          subjects[scenario].push({
            target: q.target,
            request: requestFor(scenario, q.invokePath(id), { "x-api-key": q.key }),
            groups: pgGroups,
            before: async () => {
              backends = await db.backendPids();
            },
          });
        }
      } catch (err) {
        unavailable.postgres = `Workerbase did not run on PostgreSQL: ${(err as Error).message.slice(0, 500)}`;
        log(unavailable.postgres);
        for (const scenario of ["hello", "echo"] as const)
          subjects[scenario] = subjects[scenario].filter((s) => s.target.name !== postgresTarget);
        if (onPostgres) await onPostgres.target.stop();
        onPostgres = undefined;
      }
    }
    for (const [scenario, list] of Object.entries(subjects))
      for (const s of list) await verify(scenario as Scenario, s);

    log("warm throughput and latency");
    const raw = new Map<string, CellResult[]>();
    const keep = (r: CellResult) => {
      const k = `${r.scenario}|${r.target}|${r.concurrency}`;
      raw.set(k, [...(raw.get(k) ?? []), r]);
    };
    for (let round = 0; round < options.rounds; round++) {
      for (const concurrency of options.concurrencies) {
        const cell = { scenario: "trivial server", target: "trivial server", concurrency };
        keep(
          await measure(
            loadgen,
            { name: "trivial", port: trivial.port, pids: () => [trivial.pid], stop: trivial.stop },
            { method: "GET", path: "/" },
            cell,
            timing,
          ),
        );
      }
      for (const [scenario, list] of Object.entries(subjects)) {
        for (const concurrency of options.concurrencies) {
          for (const s of list) {
            const cell = { scenario, target: s.target.name, concurrency };
            await s.before?.();
            keep(await measure(loadgen, s.target, s.request, cell, timing, s.groups));
            for (const host of [p, onPostgres])
              if (
                host &&
                (host.server.child.exitCode !== null || host.server.child.signalCode !== null)
              )
                throw new Error(`${host.target.name} exited during the run (its output is above)`);
          }
        }
      }
      log(`warm: round ${round + 1} of ${options.rounds} done`);
    }
    const cells = [...raw.values()].map(combine);

    let hotPath: HotPathCount | null = null;
    if (database && onPostgres && options.pgStatsSettleMs) {
      const top = Math.max(...options.concurrencies);
      log(`PostgreSQL transactions around a warm hello run at concurrency ${top}`);
      const subject = subjects.hello.find((s) => s.target.name === postgresTarget)!;
      hotPath = await countTransactions(
        loadgen,
        database,
        subject,
        top,
        options.durationMs,
        options.pgStatsSettleMs,
      );
      log(
        `PostgreSQL: ${hotPath.transactions} transactions for ${hotPath.invocations} invocations ` +
          `(${hotPath.idleTransactions} in ${hotPath.idleMs / 1000} s idle before)`,
      );
    }

    log("KV and D1 operations inside a function");
    const ops = await timeOps(loadgen, p, options, unavailable);

    // Baselines are done; stop them so they do not take memory or CPU from what follows.
    while (stops.length > 1) await stops.pop()!();

    log("deploy to first response");
    const deployResult = await deployToFirstResponse(p, options.deployFunctions);
    log("cold start");
    const cold = await coldStart(p, options.coldFunctions, log);
    platform = cold.platform;
    await platform.target.stop();
    platform = undefined;

    log("memory");
    const mem = await memory(
      {
        steps: options.memorySteps,
        projects: options.memoryProjects,
        parallel: options.memoryParallel,
        isolateSample: options.isolateSample,
        settleMs: options.memorySettleMs,
      },
      log,
    );
    mem.settings = {
      maxIsolatesPerProcess: defaults.maxIsolatesPerProcess,
      maxProcessRssBytes: defaults.maxProcessRssBytes,
    };

    const rest: Omit<BenchOptions, "log"> & { log?: unknown } = { ...options };
    delete rest.log;
    return {
      date: new Date(began).toISOString(),
      machine: machine(),
      options: rest,
      loadBefore,
      loadAfter: os.loadavg(),
      loadgenCeiling: cells.filter((c) => c.scenario === "trivial server"),
      warm: cells.filter((c) => c.scenario !== "trivial server"),
      unavailable,
      postgres: database && onPostgres ? { version: database.version } : null,
      hotPath,
      ops,
      cold: cold.result,
      deploy: deployResult,
      memory: mem,
      seconds: (Date.now() - began) / 1000,
    };
  } finally {
    if (platform) await platform.target.stop().catch(() => undefined);
    if (onPostgres) await onPostgres.target.stop().catch(() => undefined);
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    closeConnections();
    removeDataDirs();
  }
}
