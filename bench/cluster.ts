// The D1 point query through a forwarding host of a cluster, beside the owner (issue 14):
// two Workerbase hosts on one PostgreSQL database (created for the run, dropped after it), one
// shared D1 folder, the same master, admin and API keys. The table is seeded through the
// owner, which so takes the database's lease; then the same functions are timed on both
// hosts, interleaved, as in "KV and D1 operations inside a function": N point queries per
// call against a function doing none, at concurrency 1, per statement = (call − no-op) / N.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { d1SetupHandler, d1Rows, opHandlers } from "./handlers.js";
import { LoadGenerator, type LoadRequest } from "./loadgen.js";
import {
  closeConnections,
  deploy,
  startPlatform,
  timedRequest,
  type Platform,
} from "./platform.js";
import { createBenchDatabase, postgresUnreachable, type BenchDatabase } from "./postgres.js";
import { combine, measure, type CellResult } from "./warm.js";

export interface ClusterOptions {
  opsPerCall: number;
  opsDurationMs: number;
  warmupMs: number;
  rounds: number;
}

/** What a host's /healthz says of the project databases (in a cluster). */
export interface DatabaseRoles {
  owned: number;
  forwarded: number;
  served: number;
}

export interface ClusterSide {
  host: "owner" | "forwarder";
  /**
   * CPU ms per statement of each process group of both hosts (call minus no-op, over N): the
   * owner's host, workerd and database processes, the forwarder's host and workerd.
   */
  cpuPerOpMs: Record<string, number>;
  /** Per statement, from the p50s, the p90s and the means (call minus no-op, over N). */
  perOpP50Ms: number;
  perOpP90Ms: number;
  perOpMeanMs: number;
  call: CellResult;
  noop: CellResult;
}

export interface D1ClusterBench {
  postgres: string;
  perCall: number;
  rounds: number;
  warmupMs: number;
  durationMs: number;
  owner: ClusterSide;
  forwarder: ClusterSide;
  /** Forwarder's p50 per statement minus the owner's. */
  addedP50Ms: number;
  addedP90Ms: number;
  /** The bound: at most 0.5 ms added per statement at p50. */
  met: boolean;
  /** /healthz of both hosts right after the seeding, and after the timed runs. */
  rolesBefore: { owner: DatabaseRoles; forwarder: DatabaseRoles };
  rolesAfter: { owner: DatabaseRoles; forwarder: DatabaseRoles };
  /** Statements the forwarder's timed calls ran (all of them forwarded, if the roles hold). */
  statementsOnForwarder: number;
}

export const boundMs = 0.5;

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

const noop = `async function handler(request, env) {
  return new Response("ok");
}`;

async function roles(p: Platform): Promise<DatabaseRoles> {
  const { databases } = await p.health();
  if (!databases || typeof databases.owned !== "number")
    throw new Error(`${p.target.name} is not clustered (/healthz: ${JSON.stringify(databases)})`);
  return { owned: databases.owned, forwarded: databases.forwarded, served: databases.served };
}

/**
 * Runs the scenario; resolves with `{ skipped }` when no PostgreSQL answers. Every process it
 * starts is stopped, its database dropped and its D1 folder removed before it resolves.
 */
export async function benchD1Cluster(
  options: ClusterOptions,
  log: (line: string) => void,
): Promise<D1ClusterBench | { skipped: string }> {
  const db: BenchDatabase | null = await createBenchDatabase(log);
  if (!db) return { skipped: postgresUnreachable() ?? "no PostgreSQL" };
  const d1Dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-bench-d1-shared-"));
  const env = {
    WORKERBASE_MASTER_KEY: crypto.randomBytes(32).toString("base64"),
    WORKERBASE_ADMIN_KEY: "admin_" + crypto.randomBytes(12).toString("hex"),
    WORKERBASE_D1_DIR: d1Dir,
  };
  const key = "wb_bench_" + crypto.randomBytes(12).toString("hex");
  const hosts: Platform[] = [];
  const loadgen = new LoadGenerator();
  try {
    log(`D1 in a cluster: two hosts on PostgreSQL ${db.version} (database ${db.name})`);
    // One after the other: the first applies the store's migrations.
    for (const name of ["owner host", "forwarding host"])
      hosts.push(await startPlatform({ databaseUrl: db.url, key, env, name }));
    const [owner, forwarder] = hosts as [Platform, Platform];

    const n = options.opsPerCall;
    const setup = await deploy(owner, "d1-setup", d1SetupHandler);
    const ids = {
      noop: await deploy(owner, "cluster-noop", noop),
      op: await deploy(owner, "cluster-d1-point-query", opHandlers["d1 point query"](n)),
    };
    // The first statement of the project runs on the owner: it takes the lease.
    const seeded = await timedRequest(owner.port, "GET", owner.invokePath(setup), {
      "x-api-key": key,
    });
    if (seeded.status !== 200 || JSON.parse(seeded.body).n !== d1Rows)
      throw new Error(`seeding through the owner failed: ${seeded.status} ${seeded.body}`);
    const rolesBefore = { owner: await roles(owner), forwarder: await roles(forwarder) };
    if (rolesBefore.owner.owned !== 1 || rolesBefore.forwarder.owned !== 0)
      throw new Error(`unexpected roles after seeding: ${JSON.stringify(rolesBefore)}`);

    const request = (id: string): LoadRequest => ({
      method: "GET",
      path: owner.invokePath(id),
      headers: { "x-api-key": key },
    });
    for (const p of hosts) {
      const res = await timedRequest(p.port, "GET", p.invokePath(ids.op), { "x-api-key": key });
      if (res.status !== 200)
        throw new Error(`${p.target.name} answered ${res.status}: ${res.body.slice(0, 300)}`);
    }

    // CPU of both hosts' processes in every cell, so the forwarder's cells count the owner's
    // work too (its database processes start with the host and stay up).
    const dbPids = async (p: Platform): Promise<number[]> => (await p.health()).databases.pids;
    const [ownerDb, forwarderDb] = [await dbPids(owner), await dbPids(forwarder)];
    const groups = {
      "owner host": () => [owner.hostPid()],
      "owner workerd": owner.workerdPids,
      "owner db": () => ownerDb,
      "forwarder host": () => [forwarder.hostPid()],
      "forwarder workerd": forwarder.workerdPids,
      "forwarder db": () => forwarderDb,
    };
    const timing = { warmupMs: options.warmupMs, durationMs: options.opsDurationMs };
    const raw = new Map<string, CellResult[]>();
    for (let round = 0; round < options.rounds; round++) {
      // Alternate which host goes first, so a drift of the machine's load hits both alike.
      for (const p of round % 2 ? [forwarder, owner] : [owner, forwarder]) {
        for (const [what, id] of [
          ["noop", ids.noop],
          ["op", ids.op],
        ] as const) {
          const cell = { scenario: what, target: p.target.name, concurrency: 1 };
          const r = await measure(loadgen, p.target, request(id), cell, timing, groups);
          if (r.non2xx + r.errors > 0 || r.requests === 0)
            throw new Error(`${what} on ${p.target.name} failed (${r.non2xx} non-2xx answers)`);
          const k = `${what}|${p.target.name}`;
          raw.set(k, [...(raw.get(k) ?? []), r]);
        }
      }
      log(`D1 in a cluster: round ${round + 1} of ${options.rounds} done`);
    }
    const rolesAfter = { owner: await roles(owner), forwarder: await roles(forwarder) };
    const side = (host: ClusterSide["host"], p: Platform): ClusterSide => {
      const call = combine(raw.get(`op|${p.target.name}`)!);
      const base = combine(raw.get(`noop|${p.target.name}`)!);
      // CPU ms per call of a group in each round (share of a core × window / calls), median.
      const perCall = (what: string, g: string) =>
        median(
          raw
            .get(`${what}|${p.target.name}`)!
            .map((c) => (c.serverCpu[g] * options.opsDurationMs) / c.requests),
        );
      const cpuPerOpMs: Record<string, number> = {};
      for (const g of Object.keys(groups))
        cpuPerOpMs[g] = (perCall("op", g) - perCall("noop", g)) / n;
      return {
        host,
        cpuPerOpMs,
        perOpP50Ms: (call.p50Ms - base.p50Ms) / n,
        perOpP90Ms: (call.p90Ms - base.p90Ms) / n,
        perOpMeanMs: (call.meanMs - base.meanMs) / n,
        call,
        noop: base,
      };
    };
    // Warm-up calls run statements too; the loadgen counts only the measured window.
    const statementsOnForwarder = raw
      .get(`op|${forwarder.target.name}`)!
      .reduce((sum, r) => sum + r.requests * n, 0);
    const o = side("owner", owner);
    const f = side("forwarder", forwarder);
    if (rolesAfter.owner.owned !== 1 || rolesAfter.forwarder.owned !== 0)
      throw new Error(`the roles changed during the run: ${JSON.stringify(rolesAfter)}`);
    if (rolesAfter.forwarder.forwarded - rolesBefore.forwarder.forwarded < statementsOnForwarder)
      throw new Error(
        `the forwarder forwarded fewer statements than its calls ran: ${JSON.stringify(rolesAfter)}`,
      );
    return {
      postgres: db.version,
      perCall: n,
      rounds: options.rounds,
      warmupMs: options.warmupMs,
      durationMs: options.opsDurationMs,
      owner: o,
      forwarder: f,
      addedP50Ms: f.perOpP50Ms - o.perOpP50Ms,
      addedP90Ms: f.perOpP90Ms - o.perOpP90Ms,
      met: f.perOpP50Ms - o.perOpP50Ms <= boundMs,
      rolesBefore,
      rolesAfter,
      statementsOnForwarder,
    };
  } finally {
    await loadgen.stop().catch(() => undefined);
    for (const p of hosts.reverse()) {
      await p.target.stop().catch(() => undefined);
      fs.rmSync(p.server.dataDir, { recursive: true, force: true });
    }
    closeConnections();
    await db.drop();
    fs.rmSync(d1Dir, { recursive: true, force: true });
  }
}

/** The scenario as a Markdown section. */
export function renderD1Cluster(r: D1ClusterBench | { skipped: string }): string {
  const head = "### D1 point query through a forwarding host of a cluster";
  if ("skipped" in r) return `\n${head}\n\nNot run: ${r.skipped}.\n`;
  const ms = (v: number) => `${v.toFixed(3)} ms`;
  const row = (s: ClusterSide, label: string) =>
    `| ${label} | ${r.perCall} | **${ms(s.perOpP50Ms)}** | ${ms(s.perOpP90Ms)} | ${ms(s.perOpMeanMs)} | ${ms(s.call.p50Ms)} / ${ms(s.call.p90Ms)} | ${ms(s.noop.p50Ms)} / ${ms(s.noop.p90Ms)} |`;
  const roleText = (x: DatabaseRoles) =>
    `owned ${x.owned}, forwarded ${x.forwarded}, served ${x.served}`;
  return [
    "",
    head,
    "",
    `Two hosts on one PostgreSQL ${r.postgres} database, one shared D1 folder, the same keys; the table seeded through the owner (which so took the lease). The same functions invoked on each host at concurrency 1, ${r.rounds} rounds interleaved of ${r.warmupMs} ms warm-up and ${r.durationMs} ms measured per cell, medians; per statement = (call − no-op) / ${r.perCall}.`,
    "",
    "| function invoked on | statements per call | per statement p50 | per statement p90 | per statement mean | call p50 / p90 | no-op p50 / p90 |",
    "|---|---|---|---|---|---|---|",
    row(r.owner, "owner host"),
    row(r.forwarder, "forwarding host"),
    "",
    "CPU per statement (ms, call minus no-op over the statements, medians over the rounds), by process group of both hosts:",
    "",
    `| function invoked on | ${Object.keys(r.owner.cpuPerOpMs).join(" | ")} | total |`,
    `|---|${Object.keys(r.owner.cpuPerOpMs)
      .map(() => "---")
      .join("|")}|---|`,
    ...[r.owner, r.forwarder].map(
      (s) =>
        `| ${s.host === "owner" ? "owner host" : "forwarding host"} | ${Object.values(s.cpuPerOpMs)
          .map((v) => v.toFixed(3))
          .join(" | ")} | ${Object.values(s.cpuPerOpMs)
          .reduce((a, b) => a + b, 0)
          .toFixed(3)} |`,
    ),
    "",
    `Forwarding adds **${ms(r.addedP50Ms)} per statement at p50** (${ms(r.addedP90Ms)} at p90): ${r.met ? "within" : "**over**"} the ${boundMs} ms bound.`,
    "",
    `Roles (/healthz \`databases\`): after seeding, owner ${roleText(r.rolesBefore.owner)}; forwarder ${roleText(r.rolesBefore.forwarder)}. After the timed runs, owner ${roleText(r.rolesAfter.owner)}; forwarder ${roleText(r.rolesAfter.forwarder)} (its measured calls alone ran ${r.statementsOnForwarder.toLocaleString("en-US")} statements).`,
    "",
  ].join("\n");
}
