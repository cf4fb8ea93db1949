// Renders a run's numbers as Markdown tables, with the ratios and the targets of issue 5.
import { postgresTarget, type BenchResults } from "./bench.js";
import type { CellResult } from "./warm.js";

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(v < 10 ? 3 : 1)} ms` : "n/a");
const num = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "n/a");
const pct = (v: number) => (Number.isFinite(v) ? `${Math.round(v * 100)}%` : "n/a");

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

/** How a target is named in the tables: the store of each Workerbase host is said. */
export function label(target: string): string {
  return target === "Workerbase" ? "Workerbase (SQLite store)" : target;
}

/** The PostgreSQL host against the SQLite one, per scenario and concurrency. */
export function storeRatios(r: BenchResults) {
  const out: {
    scenario: string;
    concurrency: number;
    sqlite: CellResult;
    postgres: CellResult;
    rps: number;
    cpu: number;
  }[] = [];
  for (const scenario of ["hello", "echo"])
    for (const c of r.options.concurrencies) {
      const sqlite = cellOf(r, scenario, "Workerbase", c);
      const postgres = cellOf(r, scenario, postgresTarget, c);
      if (sqlite && postgres)
        out.push({
          scenario,
          concurrency: c,
          sqlite,
          postgres,
          rps: postgres.rps / sqlite.rps,
          cpu: cpuPerRequest(sqlite) / cpuPerRequest(postgres),
        });
    }
  return out;
}

/** The target each scenario's ratios are taken against. */
export function baselineOf(scenario: string): string {
  return scenario === "kv" || scenario === "d1" ? "Miniflare" : "bare workerd";
}

function cellOf(r: BenchResults, scenario: string, target: string, c: number) {
  return r.warm.find((x) => x.scenario === scenario && x.target === target && x.concurrency === c);
}

/** CPU milliseconds per request, server and load generator together. */
export function cpuPerRequest(c: CellResult): number {
  return c.serverCpuMsPerRequest + c.clientCpuMsPerRequest;
}

function cpu(c: CellResult): string {
  return Object.entries(c.serverCpu)
    .map(([k, v]) => (k === "server" ? pct(v) : `${k} ${pct(v)}`))
    .join(", ");
}

export interface Verdict {
  target: string;
  measured: string;
  met: boolean | null;
}

/** The targets of issue 5, judged on this run's numbers (null: not measurable in this run). */
export function verdicts(r: BenchResults): Verdict[] {
  const out: Verdict[] = [];
  const top = Math.max(...r.options.concurrencies);
  for (const scenario of ["hello", "echo"]) {
    const wb = cellOf(r, scenario, "Workerbase", top);
    const bare = cellOf(r, scenario, "bare workerd", top);
    const ratio = wb && bare ? wb.rps / bare.rps : NaN;
    const cpuRatio = wb && bare ? cpuPerRequest(bare) / cpuPerRequest(wb) : NaN;
    out.push({
      target: `${scenario}: throughput at concurrency ${top} ≥ 0.45× bare workerd`,
      measured: `${ratio.toFixed(2)}× (${num(wb?.rps ?? NaN)} vs ${num(bare?.rps ?? NaN)} req/s); by CPU per request ${cpuRatio.toFixed(2)}×`,
      met: Number.isFinite(ratio) ? ratio >= 0.45 : null,
    });
    const wb1 = cellOf(r, scenario, "Workerbase", 1);
    const bare1 = cellOf(r, scenario, "bare workerd", 1);
    const delta = wb1 && bare1 ? wb1.p50Ms - bare1.p50Ms : NaN;
    out.push({
      target: `${scenario}: p50 at concurrency 1 at most 0.3 ms above bare workerd`,
      measured: `+${delta.toFixed(3)} ms (${ms(wb1?.p50Ms ?? NaN)} vs ${ms(bare1?.p50Ms ?? NaN)})`,
      met: Number.isFinite(delta) ? delta <= 0.3 : null,
    });
  }
  const ratios = storeRatios(r).filter((x) => x.concurrency === top);
  if (ratios.length) {
    out.push({
      target: `PostgreSQL store: warm throughput at concurrency ${top} within 10% of SQLite (≥ 0.90×)`,
      measured: ratios
        .map((x) => `${x.scenario} ${x.rps.toFixed(2)}× (by CPU per request ${x.cpu.toFixed(2)}×)`)
        .join(", "),
      met: ratios.every((x) => x.rps >= 0.9),
    });
  } else if (r.unavailable.postgres) {
    out.push({
      target: "PostgreSQL store: warm throughput within 10% of SQLite",
      measured: `not measured: ${r.unavailable.postgres}`,
      met: null,
    });
  }
  if (r.hotPath) {
    const h = r.hotPath;
    out.push({
      target: "PostgreSQL store: no transaction per invocation (records batched every 100 ms)",
      measured: `${h.perInvocation.toFixed(4)} per invocation (${num(h.transactions)} for ${num(h.invocations)}; beyond the idle rate ${h.beyondIdlePerInvocation.toFixed(4)})`,
      met: h.perInvocation < 0.1,
    });
  }
  out.push({
    target: "cold start p50 ≤ 10 ms (first call after a restart)",
    measured: `${ms(r.cold.afterRestart.p50Ms)} (right after deploy: ${ms(r.cold.afterDeploy.p50Ms)})`,
    met: r.cold.afterRestart.p50Ms <= 10,
  });
  out.push({
    target: "deploy-to-first-response p50 ≤ 100 ms",
    measured: ms(r.deploy.p50Ms),
    met: r.deploy.p50Ms <= 100,
  });
  for (const op of ["kv get", "kv put", "d1 point query"]) {
    const o = r.ops.find((x) => x.op === op && x.target === "Workerbase");
    out.push({
      target: `${op}: p50 ≤ 1 ms inside a function`,
      measured: o ? ms(o.perOpP50Ms) : (r.unavailable.d1 ?? "not measured"),
      met: o ? o.perOpP50Ms <= 1 : null,
    });
  }
  const last = r.memory.points[r.memory.points.length - 1];
  if (last) {
    const total = Math.max(last.totalRssBytes, last.peakTotalRssBytes);
    out.push({
      target: `${num(last.functions)} functions within 2 GB in total (peak resident memory)`,
      measured: `peak ${mb(last.peakTotalRssBytes)}, after ${mb(last.totalRssBytes)}`,
      met: total <= 2 * 1024 ** 3,
    });
  }
  return out;
}

/** The host on PostgreSQL beside the host on SQLite, and its transactions per invocation. */
function renderStores(r: BenchResults): string {
  const head = "### Workerbase on PostgreSQL beside SQLite";
  if (!r.postgres)
    return `${head}\n\nNo PostgreSQL store rows in this run: ${r.unavailable.postgres ?? "not run"}.`;
  const rows = storeRatios(r).map((x) => [
    x.scenario,
    String(x.concurrency),
    num(x.sqlite.rps),
    num(x.postgres.rps),
    `**${x.rps.toFixed(2)}×**`,
    `${ms(x.sqlite.p50Ms)} / ${ms(x.postgres.p50Ms)}`,
    `${cpuPerRequest(x.sqlite).toFixed(3)} / ${cpuPerRequest(x.postgres).toFixed(3)}`,
    `${x.cpu.toFixed(2)}×`,
    pct(x.postgres.serverCpu.postgres ?? NaN),
  ]);
  const parts = [
    `${head}

The same handlers on a second host whose store is PostgreSQL ${r.postgres.version} (a database
created for the run, dropped after it), measured interleaved with the host on SQLite, both
running the whole time. Ratios are PostgreSQL over SQLite.

${table(
  [
    "scenario",
    "conc.",
    "SQLite req/s",
    "PostgreSQL req/s",
    "× req/s",
    "p50 SQLite / PostgreSQL",
    "CPU/req ms SQLite / PostgreSQL",
    "× CPU",
    "PostgreSQL backends CPU",
  ],
  rows,
)}`,
  ];
  const h = r.hotPath;
  if (h) {
    const idlePerSecond = h.idleTransactions / (h.idleMs / 1000);
    parts.push(
      [
        `Transactions in the PostgreSQL database (\`xact_commit + xact_rollback\` of \`pg_stat_database\`,`,
        `each reading after ${(r.options.pgStatsSettleMs ?? 0) / 1000} s of quiet, as backends report them up to 10 s late)`,
        `around a warm hello run of ${h.loadMs / 1000} s at concurrency ${h.connections}:`,
        `**${num(h.transactions)} transactions for ${num(h.invocations)} invocations, ${h.perInvocation.toFixed(4)} per invocation**.`,
        `The idle host did ${num(h.idleTransactions)} in the ${h.idleMs / 1000} s before`,
        `(${idlePerSecond.toFixed(1)} per second: its background claim loops and change check),`,
        `so beyond that rate ${h.beyondIdlePerInvocation.toFixed(4)} per invocation, ${num(h.beyondIdlePerInvocation * h.invocations)} in all,`,
        `against at most ${h.recordBatchesAtMost} batches of invocation records (written every 100 ms).`,
        `A store read or write per request would show 1 or more per invocation.`,
      ].join(" "),
    );
  }
  return parts.join("\n\n");
}

/** The whole run as Markdown. */
export function render(r: BenchResults, command: string): string {
  const m = r.machine;
  const parts: string[] = [];
  parts.push(`Run of ${r.date} (${Math.round(r.seconds)} s): \`${command}\`

- CPU: ${m.cpuModel}, ${m.cores} cores; memory ${mb(m.memoryBytes)}; Linux ${m.kernel}
- Node ${m.node}; workerd ${m.workerd}; Miniflare ${m.miniflare} (its own workerd ${m.miniflareWorkerd})
- load average before ${r.loadBefore.map((x) => x.toFixed(2)).join(" ")}, after ${r.loadAfter.map((x) => x.toFixed(2)).join(" ")}
- each cell: ${r.options.warmupMs} ms warm-up, ${r.options.durationMs} ms measured, ${r.options.rounds} rounds interleaved, medians shown`);

  parts.push(`### Load generator ceiling (against a trivial server)

${table(
  ["connections", "req/s", "p50", "p99", "load generator CPU", "server CPU"],
  r.loadgenCeiling.map((c) => [
    String(c.concurrency),
    num(c.rps),
    ms(c.p50Ms),
    ms(c.p99Ms),
    pct(c.clientCpu),
    cpu(c),
  ]),
)}`);

  const rows: string[][] = [];
  for (const scenario of ["hello", "echo", "kv", "d1"]) {
    for (const c of r.options.concurrencies) {
      const base = cellOf(r, scenario, baselineOf(scenario), c);
      for (const x of r.warm.filter((w) => w.scenario === scenario && w.concurrency === c)) {
        rows.push([
          scenario,
          String(c),
          label(x.target),
          num(x.rps),
          base ? `${(x.rps / base.rps).toFixed(2)}×` : "",
          ms(x.p50Ms),
          base ? `${x.p50Ms - base.p50Ms >= 0 ? "+" : ""}${(x.p50Ms - base.p50Ms).toFixed(3)}` : "",
          ms(x.p99Ms),
          `${x.serverCpuMsPerRequest.toFixed(3)} + ${x.clientCpuMsPerRequest.toFixed(3)}`,
          base ? `${(cpuPerRequest(base) / cpuPerRequest(x)).toFixed(2)}×` : "",
          cpu(x),
          x.non2xx + x.errors > 0 ? `${x.non2xx + x.errors} failed` : "",
        ]);
      }
    }
  }
  parts.push(`### Warm invocations

Ratios against bare workerd for hello and echo, against Miniflare for kv and d1 (bare workerd
has no local KV or D1). "CPU/req" is CPU milliseconds per request of the server's processes
plus the load generator's; "× CPU" is the baseline's CPU per request over this one's, a
throughput ratio that other load on the machine disturbs much less than req/s. "server CPU"
is the share of one core each process group used while measured (for the host on PostgreSQL
also its database's server backends, when the server runs on this machine).

${table(
  [
    "scenario",
    "conc.",
    "target",
    "req/s",
    "× req/s",
    "p50",
    "Δ p50 ms",
    "p99",
    "CPU/req ms (server + client)",
    "× CPU",
    "server CPU",
    "",
  ],
  rows,
)}${Object.entries(r.unavailable)
    .map(([k, v]) => `\n\n${k}: ${v}`)
    .join("")}`);

  parts.push(renderStores(r));

  parts.push(`### KV and D1 operations inside a function

${r.ops[0]?.perCall ?? 0} operations per invocation, concurrency 1; per operation = (p50 of the
invocation − p50 of a function doing nothing) / operations (and the same with means).

${table(
  ["operation", "target", "per op (p50)", "per op (mean)", "call p50", "no-op p50"],
  r.ops.map((o) => [
    o.op,
    label(o.target),
    ms(o.perOpP50Ms),
    ms(o.perOpMeanMs),
    ms(o.callP50Ms),
    ms(o.noopP50Ms),
  ]),
)}`);

  parts.push(`### Cold start and deploy (${r.cold.functions} and ${r.deploy.functions} functions)

${table(
  ["measure", "p50", "p99"],
  [
    [
      "first call right after its deploy",
      ms(r.cold.afterDeploy.p50Ms),
      ms(r.cold.afterDeploy.p99Ms),
    ],
    [
      "first call after a restart (cold)",
      ms(r.cold.afterRestart.p50Ms),
      ms(r.cold.afterRestart.p99Ms),
    ],
    ["second call after a restart (warm)", ms(r.cold.warm.p50Ms), ms(r.cold.warm.p99Ms)],
    ["deploy → first 200 from invoke", ms(r.deploy.p50Ms), ms(r.deploy.p99Ms)],
  ],
)}`);

  const s = r.memory.settings;
  parts.push(`### Memory

maxIsolatesPerProcess ${s.maxIsolatesPerProcess}, maxProcessRssBytes ${s.maxProcessRssBytes === null ? "?" : mb(s.maxProcessRssBytes)}; one isolate costs ${r.memory.perIsolateBytes === null ? "n/a" : `${(r.memory.perIsolateBytes / 1024 / 1024).toFixed(2)} MB`} of workerd resident memory (over the first ${r.memory.perIsolateSample} functions).

${table(
  [
    "functions",
    "host RSS",
    "workerd processes (RSS, isolates)",
    "total RSS",
    "total PSS",
    "peak total RSS",
    "recycles",
    "elapsed",
  ],
  r.memory.points.map((pt) => [
    num(pt.functions),
    mb(pt.hostRssBytes),
    pt.workerd.map((w) => `${mb(w.rssBytes)} (${w.loadedIsolates ?? "draining"})`).join(", "),
    mb(pt.totalRssBytes),
    mb(pt.totalPssBytes),
    mb(pt.peakTotalRssBytes),
    String(pt.recycles),
    `${Math.round(pt.seconds)} s`,
  ]),
)}`);

  parts.push(`### Targets

${table(
  ["target", "measured", "met"],
  verdicts(r).map((v) => [v.target, v.measured, v.met === null ? "n/a" : v.met ? "yes" : "**no**"]),
)}`);
  return parts.join("\n\n") + "\n";
}
