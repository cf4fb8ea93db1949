import type { FunctionService } from "../functions/service.js";
import type { Invoker } from "../functions/invoke.js";
import type { Trigger } from "../invocations/service.js";
import { egressFetch, EgressError } from "../http/egress.js";
import type { Clock } from "../store/clock.js";
import { headerValueProblem } from "../webhooks/headers.js";
import type { CompiledDefinition, CompiledNode } from "./definition.js";
import type {
  DecideConfig,
  FunctionConfig,
  SetVariableConfig,
  WaitConfig,
  WebhookConfig,
} from "./schema.js";
import { render } from "./template.js";

/** An event as a function sees it in `flow_events`. */
export interface FlowEvent {
  event_type: string;
  payload: unknown;
  created_at: string;
}

/** Why an execution failed: `error_details` (§5.4). */
export interface ErrorDetails {
  step_id: string;
  status_code?: number;
  message: string;
}

type Json = Record<string, unknown>;

/** An execution as the engine holds it while it runs. */
export interface RunState {
  id: string;
  projectId: string;
  workflowId: string;
  workflowName: string;
  status: "running" | "waiting" | "ended" | "failed";
  vars: Json;
  context: Json;
  system: Json;
  metadata: Json;
  whatsappContext: unknown;
  conversationId: string | null;
  currentStepId: string;
  /** Entries into each step, for the idempotency key. */
  entries: Record<string, number>;
  def: CompiledDefinition;
  /** The last 10 events, oldest first; loaded before a function first needs them. */
  recent?: FlowEvent[];
  errorDetails: ErrorDetails | null;
  createdAt: string;
  updatedAt: string;
}

/** What a step came to. */
export type StepOutcome =
  | {
      kind: "next";
      /** The edge to follow ("next", or the decision of a decide node). */
      label: string;
      decision?: boolean;
      /** Top-level vars to replace. */
      patch?: Json;
      /** Extra facts for the step_completed event. */
      info?: Json;
    }
  | { kind: "wait"; dueAt: number | null }
  | { kind: "end" }
  | { kind: "fail"; error: ErrorDetails };

export interface StepDeps {
  /** The time wait timeouts count from. */
  clock: Clock;
  functions: FunctionService;
  invoker: Invoker;
  publicUrl: string;
  allowPrivateNetwork: boolean;
  webhookTimeoutMs: number;
  log: (line: string) => void;
}

const errorChars = 512;

export function isObject(value: unknown): value is Json {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function parseJson(text: string): unknown {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function cut(text: string, max = errorChars): string {
  return text.length > max ? text.slice(0, max) : text;
}

/**
 * The idempotency key of a step's call: execution, step, and how often the step was entered.
 * It is a header, so characters one cannot carry are percent-encoded (UTF-8): saving refuses
 * such step ids, but definitions stored before that may still have them.
 */
export function idempotencyKey(state: RunState, stepId: string): string {
  const step = stepId.replace(/[^\t\x20-\x7e]/gu, (c) =>
    [...Buffer.from(c, "utf8")].map((b) => `%${b.toString(16).toUpperCase()}`).join(""),
  );
  return `${state.id}:${step}:${state.entries[stepId] ?? 1}`;
}

/** Runs the nodes of a workflow: each `run` does one step's work and never throws. */
export class StepRunner {
  constructor(private deps: StepDeps) {}

  async run(state: RunState, node: CompiledNode): Promise<StepOutcome> {
    try {
      switch (node.type) {
        case "start":
          return { kind: "next", label: "next" };
        case "end":
          return { kind: "end" };
        case "set_variable":
          return this.setVariable(state, node.config as SetVariableConfig);
        case "function":
          return await this.functionNode(state, node, node.config as FunctionConfig);
        case "decide":
          return await this.decide(state, node, node.config as DecideConfig);
        case "webhook":
          return await this.webhook(state, node, node.config as WebhookConfig);
        case "wait_for_response": {
          const minutes = (node.config as WaitConfig).timeout_minutes;
          return {
            kind: "wait",
            dueAt: minutes ? this.deps.clock.now() + minutes * 60_000 : null,
          };
        }
      }
    } catch (err) {
      this.deps.log(
        `workflow step ${state.id}/${node.id} failed unexpectedly: ${(err as Error).stack}`,
      );
      return fail(node, "The step failed because of an internal error");
    }
  }

  private scope(state: RunState) {
    return { vars: state.vars, context: state.context, system: state.system };
  }

  private setVariable(state: RunState, config: SetVariableConfig): StepOutcome {
    const value = render(config.value, this.scope(state));
    return { kind: "next", label: "next", patch: { [config.variable]: value ?? null } };
  }

  private async functionNode(state: RunState, node: CompiledNode, config: FunctionConfig) {
    const answer = await this.call(state, node, "workflow_function", {});
    if (answer.kind === "fail") return answer;
    const patch = varsOf(node, answer);
    if (patch.kind === "fail") return patch;
    if (config.save_response_to)
      patch.vars[config.save_response_to] = answer.json === undefined ? answer.text : answer.json;
    return { kind: "next", label: "next", patch: patch.vars, info: answer.info } as StepOutcome;
  }

  private async decide(state: RunState, node: CompiledNode, config: DecideConfig) {
    const labels = config.conditions.map((c) => c.label);
    const answer = await this.call(state, node, "workflow_decide", { available_edges: labels });
    if (answer.kind === "fail") return answer;
    const status_code = answer.info.status_code as number;
    if (!isObject(answer.json)) {
      return fail(
        node,
        `The decide function must answer a JSON object with "next_edge"; it answered ${answer.json === undefined ? `"${cut(answer.text, 100)}"` : JSON.stringify(answer.json).slice(0, 100)}`,
        status_code,
      );
    }
    const edge = answer.json.next_edge;
    if (typeof edge !== "string")
      return fail(
        node,
        `The decide function answered no "next_edge"; expected one of: ${labels.join(", ")}`,
        status_code,
      );
    if (!labels.includes(edge)) {
      return fail(
        node,
        `The decide function answered next_edge "${cut(edge, 100)}", which is not one of: ${labels.join(", ")}`,
        status_code,
      );
    }
    const patch = varsOf(node, answer);
    if (patch.kind === "fail") return patch;
    return {
      kind: "next",
      label: edge,
      decision: true,
      patch: patch.vars,
      info: answer.info,
    } as StepOutcome;
  }

  /** Calls the node's function with the payload of §5.3 and reads its answer. */
  private async call(state: RunState, node: CompiledNode, trigger: Trigger, extra: Json) {
    const ref: string = node.config.function_id ?? node.config.function_slug;
    const fn = await this.deps.functions.resolveForInvoke(ref, state.projectId);
    if (!fn || fn.projectId !== state.projectId)
      return fail(node, `The function "${ref}" does not exist in this project`, 404);
    const refused = this.deps.invoker.refusal(fn);
    if (refused)
      return fail(node, `The function "${ref}" cannot run: ${refused.message}`, refused.status);
    const payload = {
      execution_context: {
        vars: state.vars,
        system: state.system,
        context: state.context,
        metadata: state.metadata,
      },
      flow_events: state.recent ?? [],
      flow_info: { id: state.workflowId, name: state.workflowName, step_id: node.id },
      ...(state.whatsappContext != null ? { whatsapp_context: state.whatsappContext } : {}),
      ...extra,
    };
    const outcome = await this.deps.invoker.run(fn, {
      url: `${this.deps.publicUrl}/platform/v1/functions/${fn.id}/invoke`,
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-idempotency-key": idempotencyKey(state, node.id),
      },
      body: Buffer.from(JSON.stringify(payload)),
      trigger,
    });
    const info = {
      invocation_id: outcome.invocationId,
      status_code: outcome.status,
      duration_ms: Math.round(outcome.durationMs * 100) / 100,
    };
    const result = outcome.result;
    if (result.kind !== "ok")
      return fail(node, cut(result.error ?? "The function failed"), outcome.status);
    const text = result.body.toString("utf8");
    const json = parseJson(text);
    if (result.status < 200 || result.status > 299) {
      const message =
        isObject(json) && typeof json.error === "string"
          ? json.error
          : text || `The function answered ${result.status}`;
      return fail(node, cut(message), result.status);
    }
    return { kind: "answer" as const, text, json, info };
  }

  private async webhook(state: RunState, node: CompiledNode, config: WebhookConfig) {
    const scope = this.scope(state);
    const url = String(render(config.url, scope) ?? "");
    const method = config.method ?? "POST";
    const headers: Record<string, string> = { "user-agent": "Workerbase-Workflows" };
    for (const [k, v] of Object.entries(config.headers ?? {})) {
      const value = String(render(v, scope) ?? "");
      // Saving checked the template; what it rendered to (from vars, say) is checked here.
      const problem = headerValueProblem(value);
      if (problem)
        return fail(node, `The webhook header "${k}" cannot be sent: its value ${problem}`);
      headers[k.toLowerCase()] = value;
    }
    let body: string | undefined;
    if (config.body !== undefined && method !== "GET" && method !== "HEAD") {
      const value = render(config.body, scope);
      if (typeof value === "string") {
        body = value;
        headers["content-type"] ??= "text/plain; charset=utf-8";
      } else {
        body = JSON.stringify(value);
        headers["content-type"] ??= "application/json";
      }
    }
    const started = performance.now();
    let res;
    try {
      res = await egressFetch(url, {
        method,
        headers,
        body,
        timeoutMs: this.deps.webhookTimeoutMs,
        allowPrivateNetwork: this.deps.allowPrivateNetwork,
      });
    } catch (err) {
      if (err instanceof EgressError) return fail(node, `The webhook call failed: ${err.message}`);
      throw err;
    }
    const text = res.body.toString("utf8");
    if (res.status < 200 || res.status > 299)
      return fail(
        node,
        cut(`The webhook answered ${res.status}${text ? `: ${text}` : ""}`),
        res.status,
      );
    const info = {
      status_code: res.status,
      duration_ms: Math.round((performance.now() - started) * 100) / 100,
    };
    if (!config.save_response_to) return { kind: "next", label: "next", info } as StepOutcome;
    const json = parseJson(text);
    const patch = { [config.save_response_to]: json === undefined ? text : json };
    return { kind: "next", label: "next", patch, info } as StepOutcome;
  }
}

function fail(node: CompiledNode, message: string, status_code?: number) {
  const error: ErrorDetails = {
    step_id: node.id,
    ...(status_code !== undefined ? { status_code } : {}),
    message,
  };
  return { kind: "fail" as const, error };
}

/** The `vars` a function answered, to merge (top-level keys replace). */
function varsOf(node: CompiledNode, answer: { json: unknown; info: Json }) {
  if (!isObject(answer.json) || answer.json.vars === undefined)
    return { kind: "ok" as const, vars: {} as Json };
  if (!isObject(answer.json.vars))
    return fail(
      node,
      'The function answered "vars" that is not a JSON object',
      answer.info.status_code as number,
    );
  return { kind: "ok" as const, vars: { ...answer.json.vars } };
}
