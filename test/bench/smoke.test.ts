// `npm run bench` with tiny counts, so the benchmark cannot rot: every scenario must produce
// numbers (no timing bounds: this machine may be busy), and every process it started must be
// gone afterwards.
import assert from "node:assert/strict";
import fs from "node:fs";
import { describe, it } from "node:test";
import { runBench, type BenchResults } from "../../bench/bench.js";
import { render, verdicts } from "../../bench/report.js";
import { allWorkerd, workerdDescendants } from "../../bench/procs.js";
import { benchWorkflows } from "../../bench/workflows.js";

const finite = (v: number, what: string) =>
  assert.ok(Number.isFinite(v) && v >= 0, `${what}: ${v}`);

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

describe("the benchmark", () => {
  it("runs every scenario with tiny counts, produces numbers, and leaves no process behind", async () => {
    const before = new Set(allWorkerd());
    const r: BenchResults = await runBench({
      warmupMs: 100,
      durationMs: 300,
      rounds: 1,
      concurrencies: [1, 16],
      opsPerCall: 3,
      opsDurationMs: 300,
      coldFunctions: 3,
      deployFunctions: 3,
      memorySteps: [6, 12],
      memoryProjects: 2,
      memoryParallel: 2,
      isolateSample: 4,
      memorySettleMs: 1200,
      log: () => undefined,
    });

    assert.equal(r.loadgenCeiling.length, 2);
    for (const c of r.loadgenCeiling) finite(c.rps, "load generator ceiling");
    for (const scenario of ["hello", "echo", "kv", "d1"]) {
      const cells = r.warm.filter((c) => c.scenario === scenario);
      const targets = new Set(cells.map((c) => c.target));
      assert.ok(targets.has("Miniflare"), `${scenario} on Miniflare`);
      if (scenario === "hello" || scenario === "echo") {
        assert.ok(targets.has("bare workerd"), `${scenario} on bare workerd`);
        assert.ok(targets.has("workerd + loader"), `${scenario} on workerd + loader`);
      }
      if (!r.unavailable[scenario])
        assert.ok(targets.has("Workerbase"), `${scenario} on Workerbase`);
      for (const c of cells) {
        assert.ok(c.requests > 0, `${scenario} ${c.target} c=${c.concurrency} ran no requests`);
        assert.equal(c.non2xx + c.errors, 0, `${scenario} ${c.target} c=${c.concurrency} failed`);
        for (const v of [c.rps, c.p50Ms, c.p99Ms, c.serverCpuMsPerRequest, c.clientCpuMsPerRequest])
          finite(v, `${scenario} ${c.target}`);
      }
    }
    for (const target of ["Workerbase", "Miniflare"]) {
      const ops = r.ops.filter((o) => o.target === target).map((o) => o.op);
      assert.ok(ops.includes("kv get") && ops.includes("kv put"), `${target} KV operations`);
      if (target === "Miniflare" || !r.unavailable.d1) assert.ok(ops.includes("d1 point query"));
    }
    for (const o of r.ops) finite(o.callP50Ms, `${o.op} on ${o.target}`);
    for (const v of [r.cold.afterDeploy, r.cold.afterRestart, r.cold.warm, r.deploy])
      finite(v.p50Ms, "cold start / deploy");
    assert.deepEqual(
      r.memory.points.map((p) => p.functions),
      [6, 12],
    );
    for (const p of r.memory.points) {
      assert.ok(p.hostRssBytes > 0 && p.workerd.length > 0 && p.totalRssBytes > p.hostRssBytes);
    }
    assert.ok(render(r, "smoke").includes("### Targets"));
    assert.ok(verdicts(r).length >= 8);

    // Every process the run started is gone: its workerd children, and the workerd processes of
    // the hosts and baselines it started (their configs live in wb-bench-* directories).
    await new Promise((resolve) => setTimeout(resolve, 300));
    const left = allWorkerd().filter(
      (pid) =>
        !before.has(pid) &&
        (cmdline(pid).includes("wb-bench-") || workerdDescendants(process.pid).includes(pid)),
    );
    assert.deepEqual(left, []);
  });

  it("measures the workflow engine's overhead per step", async () => {
    const w = await benchWorkflows(1, () => undefined);
    for (const v of [
      w.setVariablePerStepMs.p50,
      w.functionEnginePerStepMs.p50,
      w.functionCallPerStepMs.p50,
    ])
      finite(v, "workflow overhead");
    assert.ok(w.setVariableSteps > 0 && w.functionSteps > 0);
  });
});
