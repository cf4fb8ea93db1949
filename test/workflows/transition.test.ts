import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compile } from "../../src/workflows/definition.js";
import type { RunState, StepOutcome } from "../../src/workflows/steps.js";
import { transition } from "../../src/workflows/transition.js";

const def = compile({
  nodes: [
    { id: "start", data: { node_type: "start" } },
    { id: "pick", data: { node_type: "decide", config: {} } },
    { id: "yes", data: { node_type: "end" } },
    { id: "last", data: { node_type: "set_variable", config: {} } },
  ],
  edges: [
    { source: "start", target: "pick", label: "next" },
    { source: "pick", target: "yes", label: "yes" },
    { source: "pick", target: "last", label: "no" },
  ],
});

function state(at: string, vars: Record<string, unknown> = {}): RunState {
  return {
    id: "e",
    projectId: "p",
    workflowId: "w",
    workflowName: "w",
    status: "running",
    vars,
    context: {},
    system: {},
    metadata: {},
    whatsappContext: null,
    conversationId: null,
    currentStepId: at,
    entries: { [at]: 1 },
    def,
    errorDetails: null,
    createdAt: "",
    updatedAt: "",
  };
}

const limits = { nowMs: 1000, leaseMs: 60_000, maxVarsBytes: 100 };
const node = (id: string) => def.nodes.get(id)!;
const run = (s: RunState, outcome: StepOutcome) =>
  transition(s, node(s.currentStepId), outcome, limits);

describe("what a step's outcome does to an execution", () => {
  it("answered vars replace top-level keys, and the decision's edge is followed and counted", () => {
    const t = run(state("pick", { keep: 1, deep: { a: 1 } }), {
      kind: "next",
      label: "no",
      decision: true,
      patch: { deep: { b: 2 } },
    });
    assert.deepEqual(t.vars, { keep: 1, deep: { b: 2 } });
    assert.equal(t.status, "running");
    assert.equal(t.currentStepId, "last");
    assert.deepEqual(t.entries, { pick: 1, last: 1 });
    assert.equal(t.dueAt, 61_000);
    assert.deepEqual(
      t.events.map((e) => [e.event_type, e.step_id, e.edge_label]),
      [
        ["decision_evaluated", "pick", "no"],
        ["variables_set", "pick", undefined],
        ["step_completed", "pick", undefined],
        ["step_entered", "last", undefined],
      ],
    );
  });

  it("a step without an outgoing edge ends the execution; an end node does too", () => {
    const a = run(state("last"), { kind: "next", label: "next" });
    assert.equal(a.status, "ended");
    assert.equal(a.currentStepId, "last");
    assert.equal(a.dueAt, null);
    assert.equal(a.events.at(-1)!.event_type, "execution_ended");
    assert.equal(run(state("yes"), { kind: "end" }).status, "ended");
  });

  it("a wait keeps the step with its timeout; a failure keeps its details", () => {
    const w = run(state("pick"), { kind: "wait", dueAt: 5000 });
    assert.deepEqual([w.status, w.currentStepId, w.dueAt], ["waiting", "pick", 5000]);
    const f = run(state("pick"), {
      kind: "fail",
      error: { step_id: "pick", status_code: 500, message: "x" },
    });
    assert.equal(f.status, "failed");
    assert.deepEqual(f.error, { step_id: "pick", status_code: 500, message: "x" });
    assert.deepEqual(
      f.events.map((e) => e.event_type),
      ["step_failed", "execution_failed"],
    );
  });

  it("a step that would make vars too large fails instead", () => {
    const t = run(state("pick", { a: 1 }), {
      kind: "next",
      label: "yes",
      patch: { big: "x".repeat(200) },
    });
    assert.equal(t.status, "failed");
    assert.match(t.error!.message, /larger than 100 bytes/);
    assert.deepEqual(t.vars, { a: 1 });
  });
});
