// Workflow engine overhead per step: the time an execution spends outside the functions it
// calls (claiming, templates, storing state and events after each step), on the real server.
//
// Two workflows, each run `runs` times one after another:
// - `set_variable` x 50: no function at all, so all of its time is engine time;
// - `function` x 10 (the issue's ten-step workflow) calling a trivial function: engine time is
//   the execution's span minus the function calls' durations (step_completed.duration_ms).
// An execution's span runs from its execution_started to its execution_ended event.
//
// On SQLite in a fresh data dir, or with `databaseUrl` on PostgreSQL (`npm run bench` runs
// both, each PostgreSQL run in a database of its own; see bench/postgres.ts).
//
// Run alone: `npm run build && node --import tsx bench/workflows.ts [--runs N]`.
import { deployFunction, startServer, type TestServer } from "../test/helpers/server.js";

export interface WorkflowBench {
  store: "sqlite" | "postgres";
  /** A non-default setting of the store, if any (set by the caller). */
  variant?: string;
  runs: number;
  setVariableSteps: number;
  functionSteps: number;
  /** p50 and p90 over runs of (engine time / steps), in ms. */
  setVariablePerStepMs: { p50: number; p90: number };
  functionEnginePerStepMs: { p50: number; p90: number };
  functionCallPerStepMs: { p50: number };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return (
    Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] * 1000) / 1000
  );
}

async function createChain(
  server: TestServer,
  name: string,
  steps: number,
  node: (i: number) => object,
) {
  const nodes: object[] = [{ id: "start", data: { node_type: "start", config: {} } }];
  const edges: object[] = [];
  let previous = "start";
  for (let i = 1; i <= steps; i++) {
    nodes.push({ id: `s${i}`, data: node(i) });
    edges.push({ source: previous, target: `s${i}`, label: "next" });
    previous = `s${i}`;
  }
  const res = await server.call("POST", "/workflows", {
    workflow: { name, definition: { nodes, edges } },
  });
  if (res.status !== 201) throw new Error(`creating ${name}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as any).data.id as string;
}

/** Runs one execution to its end; its span (ms) and the sum of its function calls (ms). */
async function runOnce(server: TestServer, workflowId: string) {
  const started = await server.call("POST", `/workflows/${workflowId}/executions`, {
    execution: { vars: { n: 1 } },
  });
  const id = ((await started.json()) as any).data.id;
  for (;;) {
    const e = ((await (await server.call("GET", `/workflow_executions/${id}`)).json()) as any).data;
    if (e.status === "failed")
      throw new Error(`execution failed: ${JSON.stringify(e.error_details)}`);
    if (e.status === "ended") break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const events: any[] = [];
  let after: string | null = null;
  do {
    const page = (await (
      await server.call(
        "GET",
        `/workflow_executions/${id}/events?limit=100${after ? `&after=${after}` : ""}`,
      )
    ).json()) as any;
    events.push(...page.data);
    after = page.meta.next_cursor;
  } while (after);
  const at = (type: string) => Date.parse(events.find((e) => e.event_type === type).created_at);
  const calls = events
    .filter((e) => e.event_type === "step_completed" && typeof e.payload.duration_ms === "number")
    .reduce((sum, e) => sum + e.payload.duration_ms, 0);
  return { spanMs: at("execution_ended") - at("execution_started"), callsMs: calls };
}

/** Measures engine overhead per step on a fresh server (its store at `databaseUrl` if set). */
export async function benchWorkflows(
  runs = 30,
  log: (line: string) => void = console.error,
  databaseUrl?: string,
): Promise<WorkflowBench> {
  // A DATABASE_URL in the bench's own environment is not inherited: SQLite unless asked.
  const server = await startServer({ env: { DATABASE_URL: databaseUrl ?? "" } });
  try {
    const fn = await deployFunction(server, {
      name: "bench-step",
      code: `async function handler(request) { await request.text(); return Response.json({ vars: {} }); }`,
    });
    const setSteps = 50;
    const fnSteps = 10;
    const chain = await createChain(server, "bench set_variable", setSteps, (i) => ({
      node_type: "set_variable",
      config: { variable: `v${i % 5}`, value: `step {{vars.n}} ${i}` },
    }));
    const calls = await createChain(server, "bench function", fnSteps, () => ({
      node_type: "function",
      config: { function_id: fn.id },
    }));
    // Warm up: first-call costs (isolate load, statement preparation) are not per-step costs.
    await runOnce(server, chain);
    await runOnce(server, calls);
    const perSet: number[] = [];
    const perFnEngine: number[] = [];
    const perFnCall: number[] = [];
    for (let i = 0; i < runs; i++) {
      const a = await runOnce(server, chain);
      perSet.push(a.spanMs / (setSteps + 1));
      const b = await runOnce(server, calls);
      perFnEngine.push((b.spanMs - b.callsMs) / (fnSteps + 1));
      perFnCall.push(b.callsMs / fnSteps);
    }
    const result: WorkflowBench = {
      store: databaseUrl ? "postgres" : "sqlite",
      runs,
      setVariableSteps: setSteps,
      functionSteps: fnSteps,
      setVariablePerStepMs: { p50: quantile(perSet, 0.5), p90: quantile(perSet, 0.9) },
      functionEnginePerStepMs: { p50: quantile(perFnEngine, 0.5), p90: quantile(perFnEngine, 0.9) },
      functionCallPerStepMs: { p50: quantile(perFnCall, 0.5) },
    };
    log(`workflow engine overhead on ${result.store}: ${JSON.stringify(result)}`);
    return result;
  } finally {
    await server.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf("--runs");
  const runs = i > 0 ? Number(process.argv[i + 1]) : 30;
  console.log(JSON.stringify(await benchWorkflows(runs, () => {}), null, 2));
}
