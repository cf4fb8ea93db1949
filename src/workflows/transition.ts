import type { CompiledNode } from "./definition.js";
import type { ErrorDetails, RunState, StepOutcome } from "./steps.js";

/** An event to store, before it has an id and a time. */
export interface PendingEvent {
  event_type: string;
  step_id: string | null;
  edge_label?: string;
  payload: Record<string, unknown>;
}

/** An execution's state after a step, and the step's events. */
export interface Transition {
  status: RunState["status"];
  vars: Record<string, unknown>;
  /** `vars` as stored. */
  varsText: string;
  currentStepId: string;
  entries: Record<string, number>;
  error: ErrorDetails | null;
  /** The lease expiry of a running execution, the timeout of a waiting one, else null. */
  dueAt: number | null;
  events: PendingEvent[];
}

/**
 * What a step's outcome does to an execution (§5.4): answered vars merge by top-level key,
 * the execution follows the outgoing edge with the outcome's label (or ends without one),
 * waits, or fails with `error_details`.
 */
export function transition(
  state: RunState,
  node: CompiledNode,
  outcome: StepOutcome,
  limits: { nowMs: number; leaseMs: number; maxVarsBytes: number },
): Transition {
  const events: PendingEvent[] = [];
  let { vars, currentStepId, entries } = state;
  let status: RunState["status"] = "running";
  let error: ErrorDetails | null = null;
  let dueAt: number | null = null;
  let varsText: string | undefined;

  if (outcome.kind === "next" && outcome.patch && Object.keys(outcome.patch).length > 0) {
    const merged = { ...vars, ...outcome.patch };
    varsText = JSON.stringify(merged);
    if (Buffer.byteLength(varsText) > limits.maxVarsBytes) {
      outcome = {
        kind: "fail",
        error: {
          step_id: node.id,
          message: `The step would make vars larger than ${limits.maxVarsBytes} bytes`,
        },
      };
      varsText = undefined;
    } else vars = merged;
  }
  const changed = varsText !== undefined;
  switch (outcome.kind) {
    case "next": {
      if (outcome.decision)
        events.push({
          event_type: "decision_evaluated",
          step_id: node.id,
          edge_label: outcome.label,
          payload: { next_edge: outcome.label },
        });
      if (changed)
        events.push({
          event_type: "variables_set",
          step_id: node.id,
          payload: { variables: outcome.patch! },
        });
      events.push({
        event_type: "step_completed",
        step_id: node.id,
        payload: { node_type: node.type, ...outcome.info },
      });
      const target = state.def.edges.get(node.id)?.get(outcome.label);
      if (target) {
        const entry = (entries[target] ?? 0) + 1;
        entries = { ...entries, [target]: entry };
        currentStepId = target;
        dueAt = limits.nowMs + limits.leaseMs;
        const type = state.def.nodes.get(target)?.type ?? null;
        events.push({
          event_type: "step_entered",
          step_id: target,
          payload: { node_type: type, entry },
        });
      } else {
        status = "ended";
        events.push({ event_type: "execution_ended", step_id: node.id, payload: {} });
      }
      break;
    }
    case "end":
      status = "ended";
      events.push(
        { event_type: "step_completed", step_id: node.id, payload: { node_type: node.type } },
        { event_type: "execution_ended", step_id: node.id, payload: {} },
      );
      break;
    case "wait":
      status = "waiting";
      dueAt = outcome.dueAt;
      events.push({
        event_type: "execution_waiting",
        step_id: node.id,
        payload: outcome.dueAt ? { timeout_at: new Date(outcome.dueAt).toISOString() } : {},
      });
      break;
    case "fail":
      status = "failed";
      error = outcome.error;
      events.push(
        { event_type: "step_failed", step_id: node.id, payload: { error_details: error } },
        { event_type: "execution_failed", step_id: node.id, payload: { error_details: error } },
      );
      break;
  }
  return {
    status,
    vars,
    varsText: varsText ?? JSON.stringify(vars),
    currentStepId,
    entries,
    error,
    dueAt,
    events,
  };
}
