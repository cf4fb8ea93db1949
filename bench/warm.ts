// Warm throughput and latency: one measured cell is one target under one load for a while,
// with the CPU of the target's processes read from /proc over the same window.
import type { Target } from "./baselines.js";
import type { LoadGenerator, LoadRequest, LoadResult } from "./loadgen.js";
import { cpuSeconds } from "./procs.js";

export interface Cell {
  scenario: string;
  target: string;
  concurrency: number;
}

export interface CellResult extends Cell, LoadResult {
  /** CPU of the target's processes in the window, as shares of one core, by process group. */
  serverCpu: Record<string, number>;
  /**
   * CPU milliseconds per request: the target's processes, and the load generator. On a busy
   * machine this is steadier than req/s, which depends on what else gets the cores.
   */
  serverCpuMsPerRequest: number;
  clientCpuMsPerRequest: number;
}

export interface Timing {
  warmupMs: number;
  durationMs: number;
}

/** Runs one cell; `groups` names the target's processes for the CPU reading. */
export async function measure(
  loadgen: LoadGenerator,
  target: Target,
  request: LoadRequest,
  cell: Cell,
  timing: Timing,
  groups: Record<string, () => number[]> = { server: target.pids },
): Promise<CellResult> {
  const start = new Map<number, number>();
  const begin = setTimeout(() => {
    for (const pids of Object.values(groups))
      for (const pid of pids()) start.set(pid, cpuSeconds(pid));
  }, timing.warmupMs);
  const result = await loadgen.run({
    port: target.port,
    request,
    connections: cell.concurrency,
    warmupMs: timing.warmupMs,
    durationMs: timing.durationMs,
  });
  clearTimeout(begin);
  const serverCpu: Record<string, number> = {};
  let serverSeconds = 0;
  for (const [label, pids] of Object.entries(groups)) {
    const seconds = pids().reduce(
      (n, pid) => n + (start.has(pid) ? cpuSeconds(pid) - start.get(pid)! : 0),
      0,
    );
    serverSeconds += seconds;
    serverCpu[label] = seconds / (timing.durationMs / 1000);
  }
  return {
    ...cell,
    ...result,
    serverCpu,
    serverCpuMsPerRequest: (serverSeconds * 1000) / result.requests,
    clientCpuMsPerRequest: (result.clientCpu * timing.durationMs) / result.requests,
  };
}

function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

/** The median of each number over the rounds of one cell (errors are summed). */
export function combine(rounds: CellResult[]): CellResult {
  const first = rounds[0];
  const serverCpu: Record<string, number> = {};
  for (const label of Object.keys(first.serverCpu))
    serverCpu[label] = median(rounds.map((r) => r.serverCpu[label]));
  return {
    scenario: first.scenario,
    target: first.target,
    concurrency: first.concurrency,
    requests: rounds.reduce((n, r) => n + r.requests, 0),
    rps: median(rounds.map((r) => r.rps)),
    p50Ms: median(rounds.map((r) => r.p50Ms)),
    p90Ms: median(rounds.map((r) => r.p90Ms)),
    p99Ms: median(rounds.map((r) => r.p99Ms)),
    meanMs: median(rounds.map((r) => r.meanMs)),
    non2xx: rounds.reduce((n, r) => n + r.non2xx, 0),
    errors: rounds.reduce((n, r) => n + r.errors, 0),
    clientCpu: median(rounds.map((r) => r.clientCpu)),
    serverCpu,
    serverCpuMsPerRequest: median(rounds.map((r) => r.serverCpuMsPerRequest)),
    clientCpuMsPerRequest: median(rounds.map((r) => r.clientCpuMsPerRequest)),
  };
}

/** p50 and p99 of a list of millisecond timings. */
export function percentiles(values: number[]): { p50Ms: number; p99Ms: number; n: number } {
  const v = [...values].sort((a, b) => a - b);
  const pick = (q: number) =>
    v.length ? v[Math.min(v.length - 1, Math.floor(q * v.length))] : NaN;
  return { p50Ms: pick(0.5), p99Ms: pick(0.99), n: v.length };
}
