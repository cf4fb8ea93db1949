// Time of one KV or D1 operation inside a function. Inside workerd the clock only advances
// across I/O, so the time is taken from outside: a function doing N operations against one
// doing none, at concurrency 1; (p50 with N - p50 without) / N.
import { startMiniflare, type Target } from "./baselines.js";
import { opHandlers, type Op } from "./handlers.js";
import type { LoadGenerator, LoadRequest } from "./loadgen.js";
import { deploy, type Platform } from "./platform.js";
import { measure } from "./warm.js";

export interface OpResult {
  op: Op;
  target: string;
  perCall: number;
  /** Per operation, from the medians and from the means. */
  perOpP50Ms: number;
  perOpMeanMs: number;
  callP50Ms: number;
  noopP50Ms: number;
}

const noop = `async function handler(request, env) {
  return new Response("ok");
}`;

/** One module answering /noop and /<op> with each handler, for Miniflare. */
function routerModule(n: number): string {
  const entries = [
    `"/noop": (() => { ${noop}; return handler; })()`,
    ...Object.entries(opHandlers).map(
      ([op, make]) =>
        `${JSON.stringify("/" + encodeURIComponent(op))}: (() => { ${make(n)}; return handler; })()`,
    ),
  ];
  return `const routes = { ${entries.join(",\n")} };
export default { fetch: (request, env) => routes[new URL(request.url).pathname](request, env) };
`;
}

/** Times each operation on Workerbase and on Miniflare (skipping what `unavailable` names). */
export async function timeOps(
  loadgen: LoadGenerator,
  p: Platform,
  options: { opsPerCall: number; opsDurationMs: number; warmupMs: number },
  unavailable: Record<string, string>,
): Promise<OpResult[]> {
  const n = options.opsPerCall;
  const timing = { warmupMs: options.warmupMs, durationMs: options.opsDurationMs };
  const ops = Object.keys(opHandlers) as Op[];
  const skip = (op: Op) => op.startsWith("d1") && unavailable.d1 !== undefined;
  const subjects: { target: Target; request: (name: "noop" | Op) => LoadRequest }[] = [];

  const paths: Record<string, string> = {
    noop: p.invokePath(await deploy(p, "ops-noop", noop)),
  };
  for (const op of ops) {
    if (!skip(op))
      paths[op] = p.invokePath(await deploy(p, `ops-${op.replace(/ /g, "-")}`, opHandlers[op](n)));
  }
  subjects.push({
    target: p.target,
    request: (name) => ({ method: "GET", path: paths[name], headers: { "x-api-key": p.key } }),
  });
  const mf = await startMiniflare(routerModule(n));
  try {
    subjects.push({
      target: mf,
      request: (name) => ({ method: "GET", path: "/" + encodeURIComponent(name) }),
    });
    const results: OpResult[] = [];
    for (const s of subjects) {
      const cell = (scenario: string) => ({ scenario, target: s.target.name, concurrency: 1 });
      const base = await measure(loadgen, s.target, s.request("noop"), cell("noop"), timing);
      for (const op of ops) {
        if (s.target === p.target && skip(op)) continue;
        const r = await measure(loadgen, s.target, s.request(op), cell(op), timing);
        if (r.non2xx > 0 || r.requests === 0)
          throw new Error(`${op} on ${s.target.name} failed (${r.non2xx} non-2xx answers)`);
        results.push({
          op,
          target: s.target.name,
          perCall: n,
          perOpP50Ms: (r.p50Ms - base.p50Ms) / n,
          perOpMeanMs: (r.meanMs - base.meanMs) / n,
          callP50Ms: r.p50Ms,
          noopP50Ms: base.p50Ms,
        });
      }
    }
    return results;
  } finally {
    await mf.stop();
  }
}
