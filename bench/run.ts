// `npm run bench`: runs every scenario, prints the tables, and saves them with the raw numbers
// to bench/out/ (the curated results with their explanation live in bench/RESULTS.md).
//
// Flags: --quick (small counts, a minute or two), --rounds N, --duration MS, --warmup MS,
// --functions N (memory: the largest step), --cold N, --deploys N, --parallel N,
// --no-postgres (skip the PostgreSQL store rows and the cluster scenario; they are skipped
// anyway when no server answers at WORKERBASE_BENCH_DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/postgres), --only d1-cluster (only the D1 point query
// through a forwarding host beside the owner, about a minute; --rounds and --duration apply),
// --only versions (rollback to first answer and schedule tick lateness, about 3 minutes;
// --rollbacks N, default 200, and --minutes N, the minute boundaries whose ticks are read,
// default 2), --only shapes (plain handler, module syntax and TypeScript side by side: cold
// start, deploy to first response and warm hello, about 4 minutes; --cold N and --deploys N
// functions of each shape, default 50, --rounds, --duration and --warmup for the warm cells).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { fullRun, machine, runBench, type BenchOptions } from "./bench.js";
import { benchD1Cluster, renderD1Cluster } from "./cluster.js";
import { createBenchDatabase, type CommitProbe } from "./postgres.js";
import { render } from "./report.js";
import { benchShapes, renderShapes } from "./shapes.js";
import { benchVersions, renderVersions } from "./versions.js";
import { benchWorkflows, type WorkflowBench } from "./workflows.js";

const args = process.argv.slice(2);
function flag(name: string): number | undefined {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const n = Number(args[i + 1]);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} needs a number`);
  return n;
}

const quick: Partial<BenchOptions> = {
  warmupMs: 500,
  durationMs: 2000,
  rounds: 1,
  opsDurationMs: 1500,
  coldFunctions: 20,
  deployFunctions: 20,
  memorySteps: [200, 1000],
  isolateSample: 100,
};

const options: BenchOptions = {
  ...fullRun,
  ...(args.includes("--quick") ? quick : {}),
  log: (line) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`),
};
options.rounds = flag("rounds") ?? options.rounds;
options.durationMs = flag("duration") ?? options.durationMs;
options.warmupMs = flag("warmup") ?? options.warmupMs;
options.coldFunctions = flag("cold") ?? options.coldFunctions;
options.deployFunctions = flag("deploys") ?? options.deployFunctions;
options.memoryParallel = flag("parallel") ?? options.memoryParallel;
if (args.includes("--no-postgres")) options.postgres = false;
const functions = flag("functions");
if (functions !== undefined)
  options.memorySteps = [Math.min(1000, functions), functions].filter(
    (v, i, a) => a.indexOf(v) === i,
  );

const scenarios = ["d1-cluster", "versions", "shapes"];
const onlyAt = args.indexOf("--only");
const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;
if (onlyAt >= 0 && !scenarios.includes(only ?? ""))
  throw new Error(`--only takes one of: ${scenarios.join(", ")}`);
// --duration sets the ops cells' measured time too when only the cluster scenario runs.
const clusterOptions = () => ({
  opsPerCall: options.opsPerCall,
  opsDurationMs: only ? (flag("duration") ?? options.opsDurationMs) : options.opsDurationMs,
  warmupMs: options.warmupMs,
  rounds: options.rounds,
});
const command = ["npm run bench", ...(args.length ? ["--", ...args] : [])].join(" ");
const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "out");

// A scenario run alone: its result (under `key` in the JSON) and its section of the report.
const alone: Record<string, () => Promise<{ key: string; result: unknown; markdown: string }>> = {
  "d1-cluster": async () => {
    const result = await benchD1Cluster(clusterOptions(), options.log);
    return { key: "cluster", result, markdown: renderD1Cluster(result) };
  },
  versions: async () => {
    const result = await benchVersions(
      {
        rollbacks: flag("rollbacks") ?? (args.includes("--quick") ? 40 : 200),
        minutes: Math.max(1, flag("minutes") ?? (args.includes("--quick") ? 1 : 2)),
        scheduled: 100,
      },
      options.log,
    );
    return { key: "versions", result, markdown: renderVersions(result) };
  },
  shapes: async () => {
    const result = await benchShapes(
      {
        functions: options.coldFunctions,
        deploys: options.deployFunctions,
        rounds: options.rounds,
        warmupMs: options.warmupMs,
        durationMs: options.durationMs,
      },
      options.log,
    );
    return { key: "shapes", result, markdown: renderShapes(result) };
  },
};

if (only) {
  const began = new Date();
  const loadBefore = os.loadavg();
  const scenario = await alone[only]();
  const loadAfter = os.loadavg();
  const m = machine();
  const markdown =
    [
      `Run of ${began.toISOString()} (${Math.round((Date.now() - began.getTime()) / 1000)} s): \`${command}\``,
      "",
      `- CPU: ${m.cpuModel}, ${m.cores} cores; memory ${(m.memoryBytes / 1024 ** 3).toFixed(0)} GB; Linux ${m.kernel}`,
      `- Node ${m.node}; workerd ${m.workerd}`,
      `- load average before ${loadBefore.map((x) => x.toFixed(2)).join(" ")}, after ${loadAfter
        .map((x) => x.toFixed(2))
        .join(" ")}`,
    ].join("\n") +
    "\n" +
    scenario.markdown;
  fs.mkdirSync(out, { recursive: true });
  const stamp = `${began.toISOString().replace(/[:.]/g, "-")}-${only}`;
  fs.writeFileSync(
    path.join(out, `${stamp}.json`),
    JSON.stringify(
      {
        date: began.toISOString(),
        machine: m,
        command,
        loadBefore,
        loadAfter,
        [scenario.key]: scenario.result,
      },
      null,
      2,
    ),
  );
  fs.writeFileSync(path.join(out, `${stamp}.md`), markdown);
  console.log(markdown);
  console.error(`saved bench/out/${stamp}.md and .json`);
  process.exit(0);
}

const results = await runBench(options);
const runs = args.includes("--quick") ? 5 : 30;
const workflows: WorkflowBench[] = [await benchWorkflows(runs, options.log)];
let workflowsOnPostgres: string | undefined = results.unavailable.postgres;
let commits: CommitProbe | undefined;
// On PostgreSQL as configured (durable commits), then with synchronous_commit off, which is
// about what SQLite's synchronous = NORMAL gives: a commit does not wait for the disk.
for (const variant of [undefined, "synchronous_commit = off"]) {
  if (options.postgres === false) break;
  const db = await createBenchDatabase(options.log, variant ? { synchronous_commit: "off" } : {});
  if (!db) break;
  try {
    if (!variant) commits = await db.commitProbe();
    workflows.push({ ...(await benchWorkflows(runs, options.log, db.url)), variant });
    workflowsOnPostgres = undefined;
  } catch (err) {
    workflowsOnPostgres = `the run on PostgreSQL failed: ${(err as Error).message.slice(0, 500)}`;
    options.log(workflowsOnPostgres);
  } finally {
    await db.drop();
  }
}
const cluster =
  options.postgres === false
    ? { skipped: "not requested in this run (--no-postgres)" }
    : await benchD1Cluster(clusterOptions(), options.log).catch((err: Error) => {
        options.log(`D1 in a cluster failed: ${err.message}`);
        return { skipped: `the run failed: ${err.message.slice(0, 500)}` };
      });
const markdown =
  render(results, command) +
  renderWorkflows(workflows, workflowsOnPostgres, commits) +
  renderD1Cluster(cluster);
fs.mkdirSync(out, { recursive: true });
const stamp = results.date.replace(/[:.]/g, "-");
fs.writeFileSync(
  path.join(out, `${stamp}.json`),
  JSON.stringify({ ...results, workflows, postgresCommits: commits ?? null, cluster }, null, 2),
);
fs.writeFileSync(path.join(out, `${stamp}.md`), markdown);
console.log(markdown);
console.error(`saved bench/out/${stamp}.md and .json`);

function renderWorkflows(all: WorkflowBench[], noPostgres?: string, commits?: CommitProbe): string {
  const ms = (v: number) => `${v.toFixed(2)} ms`;
  const store = (w: WorkflowBench) =>
    (w.store === "postgres" ? "PostgreSQL" : "SQLite") + (w.variant ? ` (${w.variant})` : "");
  const sqlite = all.find((w) => w.store === "sqlite");
  const pg = all.find((w) => w.store === "postgres" && !w.variant);
  const relaxed = all.find((w) => w.store === "postgres" && w.variant);
  const ratio = (w: WorkflowBench, to: WorkflowBench) =>
    `set_variable ${(w.setVariablePerStepMs.p50 / to.setVariablePerStepMs.p50).toFixed(2)}×, ` +
    `function steps ${(w.functionEnginePerStepMs.p50 / to.functionEnginePerStepMs.p50).toFixed(2)}×`;
  return [
    "",
    "### Workflow engine overhead per step",
    "",
    `Engine time (execution span minus the functions' own time) divided by steps, over ${all[0].runs} runs, on each store (a fresh host each).`,
    "",
    "| store | workflow | per step p50 | per step p90 |",
    "|---|---|---|---|",
    ...all.flatMap((w) => [
      `| ${store(w)} | ${w.setVariableSteps} set_variable steps | ${ms(w.setVariablePerStepMs.p50)} | ${ms(w.setVariablePerStepMs.p90)} |`,
      `| ${store(w)} | ${w.functionSteps} function steps (calls subtracted; call p50 ${ms(w.functionCallPerStepMs.p50)}) | ${ms(w.functionEnginePerStepMs.p50)} | ${ms(w.functionEnginePerStepMs.p90)} |`,
    ]),
    "",
    sqlite && pg
      ? `PostgreSQL over SQLite, p50 per step: ${ratio(pg, sqlite)}` +
        (relaxed ? `; with synchronous_commit off: ${ratio(relaxed, sqlite)}.` : ".")
      : `No PostgreSQL rows: ${noPostgres ?? "not run"}.`,
    ...(commits
      ? [
          "",
          `Each step is one transaction (the execution's state and the step's events). On this PostgreSQL server a round trip (\`select 1\`) takes ${ms(commits.roundTripMs)} p50 and a one-row insert transaction ${ms(commits.durableCommitMs)} with synchronous_commit on (the default: the commit waits for the WAL to reach the disk), ${ms(commits.asyncCommitMs)} with it off. The SQLite store runs in WAL mode with synchronous = NORMAL, so its commits do not wait for the disk.`,
        ]
      : []),
    "",
  ].join("\n");
}
