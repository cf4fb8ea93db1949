// Function shapes (issue 16), side by side on one host: the top-level `handler`, Workers module
// syntax (`export default { fetch }`) and TypeScript (types stripped by esbuild at deploy), all
// answering "hello". Cold start and deploy-to-first-response as bench/lifecycle.ts times them,
// and the warm path under the load generator as bench/warm.ts measures it.
import fs from "node:fs";
import { compileTypeScript } from "../src/functions/typescript.js";
import { LoadGenerator, type LoadRequest } from "./loadgen.js";
import {
  closeConnections,
  startPlatform,
  timedRequest,
  waitForDeploy,
  type Platform,
} from "./platform.js";
import { combine, measure, type CellResult, type Timing } from "./warm.js";

type Log = (line: string) => void;

export const shapes = ["plain", "module", "typescript"] as const;
export type Shape = (typeof shapes)[number];

const shapeNames: Record<Shape, string> = {
  plain: "plain `handler`",
  module: "module syntax",
  typescript: "TypeScript",
};

/**
 * The n-th function of a shape: the same behaviour in each (a 200 with "hello"); `n` makes every
 * function's code distinct, in a header, so no two share a module.
 */
export const shapeCode: Record<Shape, (n: number) => string> = {
  plain: (n) => `async function handler(request, env) {
  return new Response("hello", { headers: { "x-n": "${n}" } });
}`,
  module: (n) => `export default {
  async fetch(request, env, ctx) {
    return new Response("hello", { headers: { "x-n": "${n}" } });
  },
};`,
  typescript: (n) => `interface Env {
  GREETING?: string;
}

enum Greeting {
  Hello = "hello",
  Bye = "bye",
}

function first<T>(items: readonly T[], fallback: T): T {
  return items.length > 0 ? items[0] : fallback;
}

async function handler(request: Request, env: Env): Promise<Response> {
  const text: string = first<Greeting>([Greeting.Hello], Greeting.Bye);
  return new Response(text, { headers: { "x-n": "${n}" } });
}`,
};

const language = (shape: Shape) => (shape === "typescript" ? "typescript" : "javascript");

export interface Summary {
  n: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

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

export interface ShapeRow {
  shape: Shape;
  /** First call right after its deploy (the deploy's probe has loaded the isolate). */
  afterDeploy: Summary;
  /** First call after a restart of the host and its workerd processes: nothing loaded. */
  cold: Summary;
  /** Second call after the restart, for scale. */
  second: Summary;
  /** From `POST .../deploy` to the first 200 of the invoke route. */
  deployToFirst: Summary;
  /** Hello under the load generator, by concurrency (median of the rounds). */
  warm: CellResult[];
}

export interface ShapesBench {
  target: string;
  functions: number;
  deploys: number;
  rounds: number;
  timing: Timing;
  rows: ShapeRow[];
  /**
   * The deploy's type stripping alone (`compileTypeScript`, as the host calls it), timed in the
   * bench process on the same source: the first call, and the p50 of the next ones.
   */
  transform: { firstMs: number; warm: Summary };
}

export interface ShapesOptions {
  /** Functions of each shape for the cold start. */
  functions: number;
  /** Functions of each shape for deploy-to-first-response. */
  deploys: number;
  rounds: number;
  warmupMs: number;
  durationMs: number;
}

const ms = () => process.hrtime.bigint();
const since = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

/** The shapes in a different order each time, so none is always measured first. */
const rotated = (i: number): Shape[] => shapes.map((_, k) => shapes[(i + k) % shapes.length]);

async function create(p: Platform, name: string, shape: Shape, n: number): Promise<string> {
  const created = await p.api("POST", "/functions", {
    function: { name, code: shapeCode[shape](n), language: language(shape) },
  });
  return created.data.id as string;
}

async function startDeploy(p: Platform, id: string): Promise<void> {
  const res = await timedRequest(p.port, "POST", `/platform/v1/functions/${id}/deploy`, {
    "x-api-key": p.key,
  });
  if (res.status !== 202) throw new Error(`deploy of ${id} answered ${res.status}: ${res.body}`);
}

async function deployed(p: Platform, name: string, shape: Shape, n: number): Promise<string> {
  const id = await create(p, name, shape, n);
  await startDeploy(p, id);
  const fn = await waitForDeploy(p.server, id);
  if (fn.status !== "deployed") throw new Error(`deploy of ${name} failed: ${fn.deploy_error}`);
  return id;
}

async function hello(p: Platform, id: string): Promise<number> {
  const res = await timedRequest(p.port, "GET", p.invokePath(id), { "x-api-key": p.key });
  if (res.status !== 200 || res.body !== "hello")
    throw new Error(`invoke of ${id} answered ${res.status}: ${res.body.slice(0, 300)}`);
  return res.ms;
}

/** Runs the scenario; every host it starts is stopped (with its workerd) before it resolves. */
export async function benchShapes(options: ShapesOptions, log: Log): Promise<ShapesBench> {
  const times = () =>
    Object.fromEntries(shapes.map((s) => [s, [] as number[]])) as Record<Shape, number[]>;
  const afterDeploy = times();
  const cold = times();
  const second = times();
  const deployToFirst = times();
  const raw = new Map<string, CellResult[]>();
  const started: Platform[] = [];
  const loadgen = new LoadGenerator();
  try {
    const first = await startPlatform();
    started.push(first);
    log("shapes: host started; deploying the cold-start functions");
    const ids: { shape: Shape; id: string }[] = [];
    for (let i = 0; i < options.functions; i++)
      for (const shape of rotated(i)) {
        const id = await deployed(first, `cold-${shape}-${i}`, shape, i);
        ids.push({ shape, id });
        afterDeploy[shape].push(await hello(first, id));
      }
    log(`shapes: ${options.functions} functions of each shape deployed; restarting the host`);
    await first.target.stop();
    const p = await startPlatform({ dataDir: first.server.dataDir, key: first.key });
    started.push(p);
    // One call first, so the host's own first-request costs do not land on one shape.
    await hello(p, await deployed(p, "cold-warmup", "plain", -1));
    for (const { shape, id } of ids) cold[shape].push(await hello(p, id));
    for (const { shape, id } of ids) second[shape].push(await hello(p, id));

    log("shapes: deploy to first response");
    for (let i = 0; i < options.deploys; i++)
      for (const shape of rotated(i)) {
        const id = await create(p, `deploy-${shape}-${i}`, shape, 1000 + i);
        const t = ms();
        await startDeploy(p, id);
        for (let attempt = 0; ; attempt++) {
          const res = await timedRequest(p.port, "GET", p.invokePath(id), { "x-api-key": p.key });
          if (res.status === 200 && res.body === "hello") break;
          if (res.status !== 422 || attempt > 20_000)
            throw new Error(`invoke of ${id} answered ${res.status}: ${res.body.slice(0, 300)}`);
          await sleep(1);
        }
        deployToFirst[shape].push(since(t));
        await waitForDeploy(p.server, id);
      }

    log("shapes: warm hello");
    const requests = {} as Record<Shape, LoadRequest>;
    for (const shape of shapes) {
      const id = await deployed(p, `warm-${shape}`, shape, 0);
      await hello(p, id);
      requests[shape] = { method: "GET", path: p.invokePath(id), headers: { "x-api-key": p.key } };
    }
    const groups = { host: () => [p.hostPid()], workerd: p.workerdPids };
    const timing: Timing = { warmupMs: options.warmupMs, durationMs: options.durationMs };
    for (let round = 0; round < options.rounds; round++) {
      for (const concurrency of [1, 16])
        for (const shape of rotated(round)) {
          const cell = { scenario: "hello", target: shape, concurrency };
          const r = await measure(loadgen, p.target, requests[shape], cell, timing, groups);
          if (r.non2xx || r.errors)
            throw new Error(`${shape} at ${concurrency}: ${r.non2xx} non-2xx, ${r.errors} errors`);
          raw.set(`${shape}|${concurrency}`, [...(raw.get(`${shape}|${concurrency}`) ?? []), r]);
        }
      log(`shapes: warm round ${round + 1} of ${options.rounds} done`);
    }

    const source = shapeCode.typescript(0);
    let t = ms();
    compileTypeScript(source);
    const firstMs = since(t);
    const transforms: number[] = [];
    for (let i = 0; i < 50; i++) {
      t = ms();
      compileTypeScript(shapeCode.typescript(i));
      transforms.push(since(t));
    }

    return {
      target: p.target.name,
      functions: options.functions,
      deploys: options.deploys,
      rounds: options.rounds,
      timing,
      rows: shapes.map((shape) => ({
        shape,
        afterDeploy: summary(afterDeploy[shape]),
        cold: summary(cold[shape]),
        second: summary(second[shape]),
        deployToFirst: summary(deployToFirst[shape]),
        warm: [1, 16].map((c) => combine(raw.get(`${shape}|${c}`)!)),
      })),
      transform: { firstMs, warm: summary(transforms) },
    };
  } finally {
    await loadgen.stop();
    for (const p of started) await p.target.stop();
    closeConnections();
    const last = started.at(-1);
    if (last) {
      // The host stops its workerd processes; any still there after 5 s are reported.
      for (let waited = 0; last.workerdPids().length > 0 && waited < 5000; waited += 100)
        await sleep(100);
      const leaked = last.workerdPids();
      if (leaked.length)
        log(`shapes: workerd processes left after the host stopped: ${leaked.join(", ")}`);
      fs.rmSync(last.server.dataDir, { recursive: true, force: true });
    }
  }
}

/** The scenario as a Markdown section. */
export function renderShapes(r: ShapesBench): string {
  const f = (v: number) => (v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`);
  const plain = r.rows.find((x) => x.shape === "plain")!;
  const vs = (v: number, base: number) =>
    `${v >= base ? "+" : "−"}${Math.abs(v - base).toFixed(2)} ms`;
  const timedRow = (pick: (x: ShapeRow) => Summary) =>
    r.rows.map(
      (x) =>
        `| ${shapeNames[x.shape]} | ${pick(x).n} | ${f(pick(x).p50Ms)} | ${f(pick(x).p90Ms)} | ${f(pick(x).p99Ms)} | ${f(pick(x).maxMs)} | ${x === plain ? "" : vs(pick(x).p50Ms, pick(plain).p50Ms)} |`,
    );
  const head = [
    "| shape | n | p50 | p90 | p99 | max | p50 vs plain |",
    "|---|---|---|---|---|---|---|",
  ];
  const warm = (x: ShapeRow, c: number) => x.warm.find((w) => w.concurrency === c)!;
  return [
    "",
    "### Function shapes: cold start",
    "",
    `${r.functions} functions of each shape (answering "hello"), deployed one after the other with the shapes interleaved; then the host and its workerd processes restarted (nothing loaded) and each function called once (cold), then once more.`,
    "",
    ...head,
    ...timedRow((x) => x.cold),
    "",
    "| shape | first call right after its deploy p50 | second call after the restart p50 |",
    "|---|---|---|",
    ...r.rows.map(
      (x) => `| ${shapeNames[x.shape]} | ${f(x.afterDeploy.p50Ms)} | ${f(x.second.p50Ms)} |`,
    ),
    "",
    "### Function shapes: deploy → first 200",
    "",
    `${r.deploys} functions of each shape, interleaved: from \`POST .../deploy\` to the first 200 of the invoke route, polled every millisecond.`,
    "",
    ...head,
    ...timedRow((x) => x.deployToFirst),
    "",
    `The type stripping alone (\`compileTypeScript\`, esbuild's \`transformSync\`, in the bench process on the same source): first call ${f(r.transform.firstMs)}, then ${f(r.transform.warm.p50Ms)} p50, ${f(r.transform.warm.p90Ms)} p90.`,
    "",
    "### Function shapes: warm hello",
    "",
    `The load generator against each shape's hello, ${r.timing.warmupMs / 1000} s warm-up and ${r.timing.durationMs / 1000} s measured per cell, ${r.rounds} rounds interleaved, medians shown.`,
    "",
    "| shape | c=1 p50 | c=1 p99 | c=1 req/s | c=16 req/s | c=16 p50 | c=16 p99 | c=16 CPU ms/req |",
    "|---|---|---|---|---|---|---|---|",
    ...r.rows.map((x) => {
      const one = warm(x, 1);
      const many = warm(x, 16);
      return `| ${shapeNames[x.shape]} | ${one.p50Ms.toFixed(3)} ms | ${one.p99Ms.toFixed(3)} ms | ${one.rps.toFixed(0)} | ${many.rps.toFixed(0)} | ${many.p50Ms.toFixed(3)} ms | ${many.p99Ms.toFixed(3)} ms | ${many.serverCpuMsPerRequest.toFixed(3)} |`;
    }),
    "",
  ].join("\n");
}
