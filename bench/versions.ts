// Versions and schedules (issue 15), against one real `workerbase serve` on its default store:
// how soon a rollback is answered by the version it makes live, and how late a schedule's
// ticks start when 100 functions share the same `* * * * *` minute.
import fs from "node:fs";
import { storeQuery } from "../test/helpers/server.js";
import {
  closeConnections,
  deploy,
  startPlatform,
  timedRequest,
  type Platform,
} from "./platform.js";

type Log = (line: string) => void;

export interface VersionsOptions {
  /** Rollbacks timed (alternating between v1 and v2), after a few untimed ones. */
  rollbacks: number;
  /** Minute boundaries whose ticks are measured. */
  minutes: number;
  /** Functions with a `* * * * *` schedule (half `scheduled`, half `handler`). */
  scheduled: number;
}

export interface Summary {
  n: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface RollbackBench {
  rollbacks: number;
  /** From sending the rollback to the end of the first answer from the version it made live. */
  toFirstAnswer: Summary;
  /** The rollback call alone, send to last byte of its 200. */
  call: Summary;
  /** From the rollback's 200 to the end of that first answer. */
  gap: Summary;
  /** Invocations after a rollback's 200 that still answered the version it replaced. */
  staleAnswers: number;
  /** Rollbacks that had at least one stale answer. */
  rollbacksWithStale: number;
  /** One invocation of the function alone, at the same time, for scale. */
  invoke: Summary;
}

export interface TickBench {
  functions: { scheduled: number; handler: number };
  /** The measured ticks, ISO. */
  boundaries: string[];
  /** `created_at` of each record minus its tick, over every measured tick. */
  lateness: Summary;
  latenessScheduled: Summary;
  latenessHandler: Summary;
  /**
   * The claim's `claimed_at` (read from the store's schedule_ticks: taken when the host's
   * timer loop starts that tick's claim) minus the tick; then the record's `created_at` (taken
   * after the claim insert and the function lookup) minus `claimed_at`.
   */
  claimStarted: Summary;
  claimToRecord: Summary;
  /** Date.now() the function logged when it started, minus its tick. */
  functionStart: Summary;
  perBoundary: {
    /** Claims in schedule_ticks for this tick (one per function if each ran once). */
    claims: number;
    at: string;
    ran: number;
    duplicates: number;
    missing: number;
    /** The last claim started (the timer loop's length), and the first and last record. */
    lastClaimMs: number;
    firstMs: number;
    lastMs: number;
    /** The last `Date.now()` a function logged at its start, minus the tick. */
    lastStartMs: number;
    failed: number;
  }[];
  /**
   * Cron records of ticks before the first measured one (during the deploys, or a minute less
   * than 3 s after the last deploy, which is not measured).
   */
  earlierTicks: number;
}

export interface VersionsBench {
  target: string;
  rollback: RollbackBench;
  ticks: TickBench;
}

/** The target of the issue: a rollback is answered by its version within 20 ms at p50. */
export const rollbackTargetMs = 20;
/** And a tick starts within 1 s of its time. */
export const tickTargetMs = 1000;

function summary(values: number[]): Summary {
  const v = [...values].sort((a, b) => a - b);
  const pick = (q: number) =>
    v.length ? v[Math.min(v.length - 1, Math.floor(q * v.length))] : NaN;
  return {
    n: v.length,
    p50Ms: pick(0.5),
    p90Ms: pick(0.9),
    p99Ms: pick(0.99),
    maxMs: v.at(-1) ?? NaN,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const answer = (text: string) => `async function handler(request, env) {
  return new Response(${JSON.stringify(text)});
}`;

/** Deploys a function twice, then times rollbacks between its two versions. */
async function rollbacks(p: Platform, count: number, log: Log): Promise<RollbackBench> {
  const id = await deploy(p, "rollback-target", answer("v1"));
  await p.api("PATCH", `/functions/${id}`, { function: { code: answer("v2") } });
  await p.api("POST", `/functions/${id}/deploy`, { message: "v2" });
  for (;;) {
    const fn = (await p.api("GET", `/functions/${id}`)).data;
    if (fn.status === "deployed" && fn.live_version === 2) break;
    if (fn.status !== "deploying") throw new Error(`the second deploy failed: ${fn.deploy_error}`);
    await sleep(25);
  }
  const headers = { "x-api-key": p.key };
  const invoke = () => timedRequest(p.port, "GET", p.invokePath(id), headers);
  const invokeMs: number[] = [];
  // A fresh host: its first few hundred requests run before V8 has optimised the paths.
  for (let i = 0; i < 400; i++) {
    const res = await invoke();
    if (res.status !== 200 || res.body !== "v2")
      throw new Error(`v2 answered ${res.status} ${res.body}`);
    if (i >= 300) invokeMs.push(res.ms);
  }
  const warmup = 20;
  const total: number[] = [];
  const call: number[] = [];
  const gap: number[] = [];
  let staleAnswers = 0;
  let rollbacksWithStale = 0;
  for (let i = 0; i < warmup + count; i++) {
    const version = i % 2 === 0 ? 1 : 2;
    const started = process.hrtime.bigint();
    const rolled = await timedRequest(
      p.port,
      "POST",
      `/platform/v1/functions/${id}/rollback`,
      { ...headers, "content-type": "application/json" },
      JSON.stringify({ version }),
    );
    if (rolled.status !== 200 || JSON.parse(rolled.body).data.live_version !== version)
      throw new Error(`rollback to ${version} answered ${rolled.status} ${rolled.body}`);
    let stale = 0;
    for (const deadline = Date.now() + 10_000; ; stale++) {
      const res = await invoke();
      if (res.status !== 200) throw new Error(`invoke answered ${res.status} ${res.body}`);
      if (res.body === `v${version}`) break;
      if (Date.now() > deadline) throw new Error(`v${version} did not answer within 10 s`);
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (i < warmup) continue;
    total.push(ms);
    call.push(rolled.ms);
    gap.push(ms - rolled.ms);
    staleAnswers += stale;
    if (stale > 0) rollbacksWithStale++;
  }
  log(`versions: ${count} rollbacks timed`);
  return {
    rollbacks: count,
    toFirstAnswer: summary(total),
    call: summary(call),
    gap: summary(gap),
    staleAnswers,
    rollbacksWithStale,
    invoke: summary(invokeMs),
  };
}

const tickCode = {
  scheduled: `async function scheduled(event, env) {
  console.log(String(Date.now()));
}`,
  handler: `async function handler(request, env) {
  console.log(String(Date.now()));
  return new Response("ok");
}`,
};

interface CronRecord {
  status: string;
  trigger: string;
  created_at: string;
  request_headers: Record<string, string>;
  logs: { message: string }[];
}

/**
 * Deploys `count` functions with a `* * * * *` schedule, waits for `minutes` minute boundaries
 * after the last deploy, and reads back every function's cron records.
 */
async function ticks(p: Platform, count: number, minutes: number, log: Log): Promise<TickBench> {
  const ids: { id: string; kind: "scheduled" | "handler" }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = next++; i < count; i = next++) {
        const kind = i % 2 === 0 ? "scheduled" : "handler";
        const fn = await p.api("POST", "/functions", {
          function: { name: `tick-${i}`, code: tickCode[kind], schedules: [{ cron: "* * * * *" }] },
        });
        await p.api("POST", `/functions/${fn.data.id}/deploy`);
        ids.push({ id: fn.data.id, kind });
      }
    }),
  );
  for (const { id } of ids) {
    for (;;) {
      const fn = (await p.api("GET", `/functions/${id}`)).data;
      if (fn.status === "deployed" && fn.schedules[0]?.next_run_at) break;
      if (fn.status !== "deploying") throw new Error(`deploy of ${id} failed: ${fn.deploy_error}`);
      await sleep(25);
    }
  }
  // The first boundary with every schedule loaded (a reload follows each change within 10 ms).
  let first = Math.ceil(Date.now() / 60_000) * 60_000;
  if (first - Date.now() < 3000) first += 60_000;
  const boundaries = Array.from({ length: minutes }, (_, k) => first + k * 60_000);
  const last = boundaries[boundaries.length - 1];
  log(
    `versions: ${count} schedules deployed; waiting for ${boundaries.map((b) => new Date(b).toISOString().slice(11, 19)).join(", ")} (${Math.round((last - Date.now()) / 1000)} s)`,
  );
  await sleep(last - Date.now() + 5000);

  const byFunction = new Map<string, CronRecord[]>();
  for (const { id } of ids) {
    const records = (await p.api("GET", `/functions/${id}/invocations?limit=100`))
      .data as CronRecord[];
    byFunction.set(
      id,
      records.filter((r) => r.trigger === "cron"),
    );
  }
  // Claims of the measured ticks, by `function:<id>|<at>`.
  const claims = new Map<string, number>();
  const claimRows = (await storeQuery(
    p.server,
    "select owner, at, claimed_at from schedule_ticks where at >= ? and at <= ?",
    [first, last],
  )) as { owner: string; at: number; claimed_at: number }[];
  for (const c of claimRows) claims.set(`${c.owner}|${Number(c.at)}`, Number(c.claimed_at));
  const claimStarted: number[] = [];
  const claimToRecord: number[] = [];
  const late = (r: CronRecord) =>
    Date.parse(r.created_at) - Date.parse(r.request_headers["x-workerbase-scheduled-time"]);
  const measured = new Set(boundaries.map((b) => new Date(b).toISOString()));
  const all: number[] = [];
  const perKind = { scheduled: [] as number[], handler: [] as number[] };
  const started: number[] = [];
  let earlierTicks = 0;
  for (const { id, kind } of ids)
    for (const r of byFunction.get(id)!) {
      const at = r.request_headers["x-workerbase-scheduled-time"];
      if (!measured.has(at)) {
        if (Date.parse(at) < first) earlierTicks++;
        continue;
      }
      all.push(late(r));
      perKind[kind].push(late(r));
      const claimedAt = claims.get(`function:${id}|${Date.parse(at)}`);
      if (claimedAt !== undefined) {
        claimStarted.push(claimedAt - Date.parse(at));
        claimToRecord.push(Date.parse(r.created_at) - claimedAt);
      }
      const logged = Number(r.logs[0]?.message);
      if (Number.isFinite(logged)) started.push(logged - Date.parse(at));
    }
  const perBoundary = boundaries.map((b) => {
    const at = new Date(b).toISOString();
    let ran = 0;
    let duplicates = 0;
    let missing = 0;
    let failed = 0;
    const times: number[] = [];
    const starts: number[] = [];
    for (const { id } of ids) {
      const here = byFunction
        .get(id)!
        .filter((r) => r.request_headers["x-workerbase-scheduled-time"] === at);
      ran += here.length;
      if (here.length === 0) missing++;
      if (here.length > 1) duplicates += here.length - 1;
      failed += here.filter((r) => r.status !== "success").length;
      times.push(...here.map(late));
      for (const r of here)
        if (Number.isFinite(Number(r.logs[0]?.message))) starts.push(Number(r.logs[0].message) - b);
    }
    return {
      at,
      claims: claimRows.filter((c) => Number(c.at) === b).length,
      lastClaimMs: Math.max(
        ...claimRows.filter((c) => Number(c.at) === b).map((c) => c.claimed_at - b),
      ),
      ran,
      duplicates,
      missing,
      failed,
      firstMs: Math.min(...times),
      lastMs: Math.max(...times),
      lastStartMs: Math.max(...starts),
    };
  });
  return {
    functions: {
      scheduled: ids.filter((x) => x.kind === "scheduled").length,
      handler: ids.filter((x) => x.kind === "handler").length,
    },
    boundaries: boundaries.map((b) => new Date(b).toISOString()),
    lateness: summary(all),
    latenessScheduled: summary(perKind.scheduled),
    latenessHandler: summary(perKind.handler),
    claimStarted: summary(claimStarted),
    claimToRecord: summary(claimToRecord),
    functionStart: summary(started),
    perBoundary,
    earlierTicks,
  };
}

/** Runs the scenario on a fresh host, which is stopped (with its workerd) before it resolves. */
export async function benchVersions(options: VersionsOptions, log: Log): Promise<VersionsBench> {
  const p = await startPlatform();
  try {
    log("versions: host started");
    const rollback = await rollbacks(p, options.rollbacks, log);
    const tickResult = await ticks(p, options.scheduled, options.minutes, log);
    return { target: p.target.name, rollback, ticks: tickResult };
  } finally {
    await p.target.stop();
    closeConnections();
    // The host stops its workerd processes; any still there after 5 s are reported.
    for (let waited = 0; p.workerdPids().length > 0 && waited < 5000; waited += 100)
      await sleep(100);
    const leaked = p.workerdPids();
    if (leaked.length)
      log(`versions: workerd processes left after the host stopped: ${leaked.join(", ")}`);
    fs.rmSync(p.server.dataDir, { recursive: true, force: true });
  }
}

/** The scenario as a Markdown section. */
export function renderVersions(r: VersionsBench): string {
  const ms = (v: number) => (v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`);
  // Record and claim times are whole milliseconds.
  const whole = (v: number) => `${Math.round(v)} ms`;
  const row = (label: string, s: Summary, f = ms) =>
    `| ${label} | ${s.n} | ${f(s.p50Ms)} | ${f(s.p90Ms)} | ${f(s.p99Ms)} | ${f(s.maxMs)} |`;
  const head = ["| measure | n | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|"];
  const b = r.rollback;
  const t = r.ticks;
  const expected = t.functions.scheduled + t.functions.handler;
  const exact = t.perBoundary.every(
    (x) => x.ran === expected && x.duplicates === 0 && x.missing === 0,
  );
  return [
    "",
    "### Rollback to first answer",
    "",
    `One function deployed twice (v1 answers "v1", v2 "v2"); ${b.rollbacks} rollbacks alternating between them (after 20 untimed, and 300 untimed invocations), each \`POST /functions/{id}/rollback {"version": n}\` followed by invocations one after the other until one answers vn. Timed from sending the rollback to the last byte of that answer; the call is the rollback's own request, the gap the rest.`,
    "",
    ...head,
    row("**rollback → first answer of its version**", b.toFirstAnswer),
    row("rollback call", b.call),
    row("gap after the call's 200", b.gap),
    row("one invocation alone (for scale)", b.invoke),
    "",
    `Answers from the replaced version after a rollback's 200: ${b.staleAnswers} (in ${b.rollbacksWithStale} of ${b.rollbacks} rollbacks). Target p50 under ${rollbackTargetMs} ms: ${b.toFirstAnswer.p50Ms < rollbackTargetMs ? "met" : "**not met**"}.`,
    "",
    "### Schedule tick lateness",
    "",
    `${expected} functions with \`schedules: [{cron: "* * * * *"}]\` in one project, ${t.functions.scheduled} defining \`scheduled(event, env)\`, ${t.functions.handler} a \`handler\` (which gets the POST); the ticks of ${t.boundaries.length} minute boundaries after the last deploy (${t.boundaries.map((x) => x.slice(11, 16)).join(", ")} UTC). Lateness = the record's \`created_at\` (taken just before the host sends the invocation to workerd) − its \`x-workerbase-scheduled-time\`; function start = the \`Date.now()\` the function logged first − the tick; \`claimed_at\` is read from the store's \`schedule_ticks\` (the host takes it as its timer loop starts the tick's claim).`,
    "",
    ...head,
    row("**lateness, all ticks**", t.lateness, whole),
    row("lateness, `scheduled` functions", t.latenessScheduled, whole),
    row("lateness, `handler` functions", t.latenessHandler, whole),
    row("claim started (`claimed_at` − tick)", t.claimStarted, whole),
    row("claim started → record (`created_at` − `claimed_at`)", t.claimToRecord, whole),
    row("function start − tick", t.functionStart, whole),
    "",
    "| tick | claims | ran | duplicates | missing | failed | last claim started | first record | last record | last function start |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...t.perBoundary.map(
      (x) =>
        `| ${x.at.slice(11, 19)} | ${x.claims} | ${x.ran} | ${x.duplicates} | ${x.missing} | ${x.failed} | +${whole(x.lastClaimMs)} | +${whole(x.firstMs)} | +${whole(x.lastMs)} | +${whole(x.lastStartMs)} |`,
    ),
    "",
    `Ticks per minute ${exact ? `exactly ${expected}` : "**not exactly " + expected + "**"}; records of earlier ticks (during the deploys, or a minute less than 3 s after them) not counted: ${t.earlierTicks}. Target within ${tickTargetMs} ms: ${t.lateness.maxMs <= tickTargetMs ? "met (max)" : t.lateness.p99Ms <= tickTargetMs ? "met at p99, not at max" : "**not met**"}.`,
    "",
  ].join("\n");
}
