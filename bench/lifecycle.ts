// Cold start, deploy-to-first-response and memory: the scenarios that deploy many functions.
import { numberedHandler } from "./handlers.js";
import {
  createProject,
  deploy,
  startPlatform,
  timedRequest,
  waitForDeploy,
  type Platform,
} from "./platform.js";
import { pssBytes, rssBytes } from "./procs.js";
import { percentiles } from "./warm.js";

type Log = (line: string) => void;

export interface ColdResult {
  functions: number;
  /** First call right after the deploy (the deploy's probe has loaded the isolate already). */
  afterDeploy: { p50Ms: number; p99Ms: number };
  /** First call after a restart of the host and its workerd processes: nothing is loaded. */
  afterRestart: { p50Ms: number; p99Ms: number };
  /** Second call of each function after the restart: the same path, warm. */
  warm: { p50Ms: number; p99Ms: number };
}

async function invokeOk(p: Platform, id: string, key = p.key): Promise<number> {
  const res = await timedRequest(p.port, "GET", p.invokePath(id), { "x-api-key": key });
  if (res.status !== 200) throw new Error(`invoke of ${id} answered ${res.status}: ${res.body}`);
  return res.ms;
}

/**
 * Deploys `count` functions, times the first call of each right after its deploy, then
 * restarts the host (all of its workerd processes start empty) and times the first and second
 * call of each again. Resolves with the restarted platform, which the caller stops.
 */
export async function coldStart(
  p: Platform,
  count: number,
  log: Log,
): Promise<{ result: ColdResult; platform: Platform }> {
  const ids: string[] = [];
  const afterDeploy: number[] = [];
  for (let i = 0; i < count; i++) {
    const id = await deploy(p, `cold-${i}`, numberedHandler(i));
    ids.push(id);
    afterDeploy.push(await invokeOk(p, id));
  }
  log(`cold start: ${count} functions deployed; restarting the host`);
  const { dataDir } = p.server;
  await p.target.stop();
  const restarted = await startPlatform({ dataDir, key: p.key });
  // One call first, so the host's own first-request costs (JIT, connection setup, key lookup)
  // do not land on the first measured function.
  const warmup = await deploy(restarted, "cold-warmup", numberedHandler(-1));
  await invokeOk(restarted, warmup);
  const afterRestart: number[] = [];
  for (const id of ids) afterRestart.push(await invokeOk(restarted, id));
  const warm: number[] = [];
  for (const id of ids) warm.push(await invokeOk(restarted, id));
  return {
    result: {
      functions: count,
      afterDeploy: percentiles(afterDeploy),
      afterRestart: percentiles(afterRestart),
      warm: percentiles(warm),
    },
    platform: restarted,
  };
}

export interface DeployResult {
  functions: number;
  p50Ms: number;
  p99Ms: number;
}

/** From `POST .../deploy` to the first 200 of the function's invoke route, per function. */
export async function deployToFirstResponse(p: Platform, count: number): Promise<DeployResult> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const created = await p.api("POST", "/functions", {
      function: { name: `deploy-${i}`, code: numberedHandler(1000 + i) },
    });
    const id = created.data.id as string;
    const started = process.hrtime.bigint();
    const accepted = await timedRequest(p.port, "POST", `/platform/v1/functions/${id}/deploy`, {
      "x-api-key": p.key,
    });
    if (accepted.status !== 202) throw new Error(`deploy answered ${accepted.status}`);
    for (let attempt = 0; ; attempt++) {
      const res = await timedRequest(p.port, "GET", p.invokePath(id), { "x-api-key": p.key });
      if (res.status === 200) break;
      if (res.status !== 422 || attempt > 20_000) throw new Error(`invoke answered ${res.status}`);
      await new Promise((r) => setTimeout(r, 1));
    }
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
    await waitForDeploy(p.server, id);
  }
  return { functions: count, ...percentiles(times) };
}

export interface MemoryPoint {
  functions: number;
  hostRssBytes: number;
  workerd: { pid: number; rssBytes: number; pssBytes: number; loadedIsolates: number | null }[];
  totalRssBytes: number;
  totalPssBytes: number;
  /** Highest total RSS seen (sampled every 250 ms) from the start up to this point. */
  peakTotalRssBytes: number;
  recycles: number;
  seconds: number;
}

export interface MemoryResult {
  points: MemoryPoint[];
  /** Growth of workerd's resident memory per loaded isolate, over the first functions. */
  perIsolateBytes: number | null;
  perIsolateSample: number;
  settings: { maxIsolatesPerProcess: number | null; maxProcessRssBytes: number | null };
}

function totalRss(p: Platform): number {
  return rssBytes(p.hostPid()) + p.workerdPids().reduce((n, pid) => n + rssBytes(pid), 0);
}

async function snapshot(p: Platform, functions: number, peak: number, t0: number) {
  const health = await p.health();
  const byPid = new Map<number, number>(
    (health.runtime as { pid: number; loaded_isolates: number }[]).map((r) => [
      r.pid,
      r.loaded_isolates,
    ]),
  );
  const workerd = p.workerdPids().map((pid) => ({
    pid,
    rssBytes: rssBytes(pid),
    pssBytes: pssBytes(pid),
    loadedIsolates: byPid.get(pid) ?? null,
  }));
  const hostRssBytes = rssBytes(p.hostPid());
  const totalRssBytes = hostRssBytes + workerd.reduce((n, w) => n + w.rssBytes, 0);
  return {
    functions,
    hostRssBytes,
    workerd,
    totalRssBytes,
    totalPssBytes: pssBytes(p.hostPid()) + workerd.reduce((n, w) => n + w.pssBytes, 0),
    peakTotalRssBytes: Math.max(peak, totalRssBytes),
    recycles: health.recycles as number,
    seconds: (Date.now() - t0) / 1000,
  };
}

/**
 * Deploys functions over `projects` projects (so they spread over the runtime processes as
 * real tenants do), invoking each once, and records memory at each step in `steps`.
 */
export async function memory(
  options: {
    steps: number[];
    projects: number;
    parallel: number;
    isolateSample: number;
    /** Pause before each reading: at least a heartbeat (1 s), so isolate counts are current. */
    settleMs: number;
  },
  log: Log,
): Promise<MemoryResult> {
  const p = await startPlatform();
  try {
    const keys = [p.key];
    for (let i = 1; i < options.projects; i++) keys.push(await createProject(p, `bench-${i}`));
    const t0 = Date.now();
    let peak = totalRss(p);
    const sampler = setInterval(() => (peak = Math.max(peak, totalRss(p))), 250);
    const isolates = async () =>
      ((await p.health()).runtime as { loaded_isolates: number }[]).reduce(
        (n, r) => n + r.loaded_isolates,
        0,
      );
    const workerdRss = () => p.workerdPids().reduce((n, pid) => n + rssBytes(pid), 0);
    // Let a heartbeat report the isolate counts before the first reading.
    await new Promise((r) => setTimeout(r, options.settleMs));
    const base = { rss: workerdRss(), isolates: await isolates() };
    let perIsolateBytes: number | null = null;
    const points: MemoryPoint[] = [];
    let next = 0;
    const sample = Math.min(options.isolateSample, options.steps[0]);
    try {
      // The first `sample` functions measure the cost of an isolate, then each step is recorded.
      for (const step of [sample, ...options.steps]) {
        const workers = Array.from({ length: options.parallel }, async () => {
          for (let i = next++; i < step; i = next++) {
            const key = keys[i % keys.length];
            const id = await deploy(p, `mem-${i}`, numberedHandler(i), key);
            await invokeOk(p, id, key);
            if ((i + 1) % 1000 === 0) log(`memory: ${i + 1} functions deployed and invoked`);
          }
        });
        await Promise.all(workers);
        next = step;
        // Let a heartbeat report the isolate counts, and let the pool finish any recycling it
        // started (drained processes exit on a heartbeat).
        await new Promise((r) => setTimeout(r, options.settleMs));
        if (step === sample && points.length === 0 && perIsolateBytes === null) {
          const health = await p.health();
          if (health.recycles === 0)
            perIsolateBytes = (workerdRss() - base.rss) / ((await isolates()) - base.isolates);
        }
        if (options.steps.includes(step) && !points.some((pt) => pt.functions === step))
          points.push(await snapshot(p, step, peak, t0));
      }
    } finally {
      clearInterval(sampler);
    }
    return {
      points,
      perIsolateBytes,
      perIsolateSample: sample,
      settings: { maxIsolatesPerProcess: null, maxProcessRssBytes: null },
    };
  } finally {
    await p.target.stop();
  }
}
