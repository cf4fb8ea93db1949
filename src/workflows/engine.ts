import crypto from "node:crypto";
import { ClaimLoop } from "../store/claimloop.js";
import type { Clock } from "../store/clock.js";
import type { Store } from "../store/db.js";
import { release, renew } from "../store/leases.js";
import { compile, type CompiledDefinition, type CompiledNode } from "./definition.js";
import type { Definition } from "./schema.js";
import { StepRunner, type FlowEvent, type RunState, type StepOutcome } from "./steps.js";
import { executionLeases, workflowStore, type EventInsert, type ExecutionRow } from "./store.js";
import { transition, type PendingEvent } from "./transition.js";

export interface EngineOptions {
  /** Identifies this host across its restarts, so it takes back its own executions at once. */
  hostId: string;
  clock: Clock;
  leaseMs: number;
  /** How often the store is looked at for abandoned executions and passed wait timeouts. */
  sweepMs: number;
  maxVarsBytes: number;
  log: (line: string) => void;
}

/** What listeners of finished executions receive. */
export interface ExecutionFinished {
  event: "workflow.execution.ended" | "workflow.execution.failed";
  projectId: string;
  execution: RunState;
}

export interface NewExecution {
  projectId: string;
  workflowId: string;
  workflowName: string;
  versionId: string;
  vars: Record<string, unknown>;
  context: Record<string, unknown>;
  metadata: Record<string, unknown>;
  triggerType: "api_call" | "inbound_message" | "whatsapp_event" | "cron";
  whatsappContext?: unknown;
  conversationId?: string;
}

/** What the engine's claim loop runs: an execution to drive, or a wait timeout to fire. */
type Work =
  | { kind: "claimed"; id: string; row: ExecutionRow }
  | { kind: "started"; id: string; state: RunState }
  | { kind: "timeout"; id: string };

/**
 * Most executions one host drives at once from claims; those it begins or resumes itself
 * always start at once. High because a step mostly waits (on a function or a URL).
 */
const maxClaimedInFlight = 1000;

/**
 * Runs workflow executions. Every execution runs under a lease in the store (renewed while
 * it runs) and is stored after each step (its state, the step it is at, and the step's
 * events in one transaction), so a restarted host continues its own executions after their
 * last completed step, and any host takes over one whose lease ran out. Waiting executions
 * hold no lease; the same claim loop finds those whose timeout passed.
 */
export class WorkflowEngine {
  private definitions = new Map<string, CompiledDefinition>();
  private listeners = new Set<(e: ExecutionFinished) => void>();
  private loop: ClaimLoop<Work>;
  private stopping = false;
  /** Set once shutdown stopped waiting: late step results are then dropped, not stored. */
  private abandoned = false;

  constructor(
    private db: Store,
    private steps: StepRunner,
    private options: EngineOptions,
  ) {
    const { hostId, leaseMs } = options;
    const ids = (items: Work[]) => items.map((w) => w.id);
    this.loop = new ClaimLoop<Work>({
      name: "workflow executions",
      pollMs: options.sweepMs,
      maxInFlight: maxClaimedInFlight,
      leaseMs,
      clock: options.clock,
      key: (w) => w.id,
      claim: async (limit, { now, ownToo }) => {
        const rows = await workflowStore.claim(db, { owner: hostId, now, leaseMs, limit, ownToo });
        const work: Work[] = rows.map((row) => ({ kind: "claimed", id: row.id, row }));
        if (work.length < limit)
          for (const { id } of await workflowStore.timedOut(db, now, limit - work.length))
            work.push({ kind: "timeout", id });
        return work;
      },
      run: (w) => this.run(w),
      renew: (items, now) => renew(db, executionLeases, ids(items), hostId, now + leaseMs),
      release: (items) => {
        this.abandoned = true;
        return release(db, executionLeases, ids(items), hostId);
      },
      log: options.log,
    });
  }

  /**
   * Takes back this host's running executions (resolving once they are running again), then
   * keeps looking for abandoned executions and passed wait timeouts.
   */
  start(): Promise<void> {
    return this.loop.start();
  }

  /**
   * Stops taking work; steps in progress get until `deadlineMs` (epoch ms) to finish and be
   * stored. A step still running then is dropped, its execution handed back to the store,
   * and it runs again on the next host to claim it (this one after a restart, or another).
   */
  async stop(deadlineMs: number): Promise<void> {
    this.stopping = true;
    await this.loop.stop(deadlineMs);
    this.abandoned = true;
  }

  /** Calls `listener` after each execution that ends or fails; returns an unsubscribe. */
  onFinished(listener: (e: ExecutionFinished) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stores a new execution at its start step and runs it. */
  async begin(input: NewExecution): Promise<RunState> {
    const def = await this.definition(input.versionId);
    const id = crypto.randomUUID();
    const nowMs = this.options.clock.now();
    const at = new Date(nowMs).toISOString();
    const system = {
      workflow_id: input.workflowId,
      workflow_execution_id: id,
      started_at: at,
      trigger_type: input.triggerType,
    };
    const state: RunState = {
      id,
      projectId: input.projectId,
      workflowId: input.workflowId,
      workflowName: input.workflowName,
      status: "running",
      vars: input.vars,
      context: input.context,
      system,
      metadata: input.metadata,
      whatsappContext: input.whatsappContext ?? null,
      conversationId: input.conversationId ?? null,
      currentStepId: "start",
      entries: { start: 1 },
      def,
      errorDetails: null,
      createdAt: at,
      updatedAt: at,
    };
    const events = this.eventRows(id, at, [
      {
        event_type: "execution_started",
        step_id: null,
        payload: { trigger_type: input.triggerType },
      },
      { event_type: "step_entered", step_id: "start", payload: { node_type: "start", entry: 1 } },
    ]);
    state.recent = events.map(toFlowEvent);
    await this.db.transaction().execute(async (tx) => {
      await workflowStore.insertExecution(tx, {
        id,
        project_id: input.projectId,
        workflow_id: input.workflowId,
        version_id: input.versionId,
        workflow_name: input.workflowName,
        status: "running",
        vars: JSON.stringify(input.vars),
        context: JSON.stringify(input.context),
        system: JSON.stringify(system),
        metadata: JSON.stringify(input.metadata),
        whatsapp_context:
          input.whatsappContext == null ? null : JSON.stringify(input.whatsappContext),
        conversation_id: input.conversationId ?? null,
        current_step_id: "start",
        step_entries: JSON.stringify(state.entries),
        error_details: null,
        lease_owner: this.options.hostId,
        due_at: nowMs + this.options.leaseMs,
        created_at: at,
        updated_at: at,
      });
      await workflowStore.insertEvents(tx, events);
    });
    this.launch(state);
    return state;
  }

  /**
   * Continues a waiting execution on its `next` edge: with the user's input, or because its
   * timeout passed. Null when it was not waiting (or another caller resumed it first).
   */
  async resume(id: string, how: Resume): Promise<RunState | null> {
    const state = await this.wake(id, how);
    if (state) this.launch(state);
    return state;
  }

  /**
   * Moves a waiting execution on to its next step, leased to this host; does not run it.
   * Only the wait that was read moves on: a timeout seen just before an input resumed the
   * execution (which may wait again by now) changes nothing.
   */
  private async wake(id: string, how: Resume): Promise<RunState | null> {
    const row = await workflowStore.execution(this.db, id);
    if (!row || row.status !== "waiting") return null;
    if (how.reason === "timeout" && (row.due_at === null || row.due_at > this.options.clock.now()))
      return null;
    const state = await this.toState(row);
    const node = state.def.nodes.get(state.currentStepId);
    if (!node) return null;
    const patch: Record<string, unknown> = {};
    if (how.reason === "input") {
      patch.last_user_input = how.input;
      if (node.config.save_response_to) patch[node.config.save_response_to] = how.input;
    }
    const extra: { whatsapp_context?: string } = {};
    if (how.reason === "input" && how.whatsappContext !== undefined) {
      state.whatsappContext = how.whatsappContext;
      extra.whatsapp_context = JSON.stringify(how.whatsappContext);
    }
    state.system = { ...state.system, last_resume: { reason: how.reason } };
    const resumed: PendingEvent = {
      event_type: "execution_resumed",
      step_id: node.id,
      payload: { reason: how.reason },
    };
    const next: StepOutcome = { kind: "next", label: "next", patch };
    const ok = await this.commit(state, node, next, { waiting: row.updated_at }, [resumed], extra);
    return ok ? state : null;
  }

  /**
   * Runs an execution this host just began or resumed, now, in the claim loop (so its lease
   * is renewed). Once shutdown began, it goes back to the store for another host instead.
   */
  private launch(state: RunState) {
    if (state.status !== "running") return;
    if (!this.loop.adopt({ kind: "started", id: state.id, state }))
      release(this.db, executionLeases, [state.id], this.options.hostId).catch((err) =>
        this.options.log(`handing back workflow execution ${state.id} failed: ${err}`),
      );
  }

  private async run(w: Work): Promise<void> {
    try {
      const state =
        w.kind === "started"
          ? w.state
          : w.kind === "claimed"
            ? await this.toState(w.row)
            : await this.wake(w.id, { reason: "timeout" });
      if (state) await this.drive(state);
    } catch (err) {
      this.options.log(`workflow execution ${w.id} stopped: ${(err as Error).stack}`);
    }
  }

  /**
   * Runs steps until the execution waits, ends or fails, or the host stops: then the
   * execution goes back to the store at once, for whichever host claims it next.
   */
  private async drive(state: RunState) {
    while (state.status === "running" && !this.stopping) {
      const node = state.def.nodes.get(state.currentStepId);
      if (!state.recent && (node?.type === "function" || node?.type === "decide"))
        state.recent = await this.recentEvents(state.id);
      const outcome: StepOutcome = node
        ? await this.steps.run(state, node)
        : {
            kind: "fail",
            error: { step_id: state.currentStepId, message: "The step is not in the definition" },
          };
      if (this.abandoned) return;
      const ok = await this.commit(
        state,
        node ?? { id: state.currentStepId, type: "end", config: {} },
        outcome,
        "running",
      );
      if (!ok) {
        this.options.log(
          `workflow execution ${state.id} was taken over elsewhere; this host stops running it`,
        );
        return;
      }
    }
    if (state.status === "running" && !this.abandoned)
      await release(this.db, executionLeases, [state.id], this.options.hostId);
  }

  /**
   * Stores what a step came to, with its events, in one transaction; only while the
   * execution is still this host's and running, or still the wait last updated at
   * `from.waiting`. False if it was not.
   */
  private async commit(
    state: RunState,
    node: CompiledNode,
    outcome: StepOutcome,
    from: "running" | { waiting: string },
    pre: PendingEvent[] = [],
    extra: { whatsapp_context?: string } = {},
  ): Promise<boolean> {
    const nowMs = this.options.clock.now();
    const at = new Date(nowMs).toISOString();
    const next = transition(state, node, outcome, {
      nowMs,
      leaseMs: this.options.leaseMs,
      maxVarsBytes: this.options.maxVarsBytes,
    });
    const { vars, currentStepId, entries, status, error, dueAt } = next;
    const events = [...pre, ...next.events];
    const rows = this.eventRows(state.id, at, events);
    const patch = {
      status,
      vars: next.varsText,
      system: JSON.stringify(state.system),
      current_step_id: currentStepId,
      step_entries: JSON.stringify(entries),
      error_details: error ? JSON.stringify(error) : null,
      lease_owner: status === "running" ? this.options.hostId : null,
      due_at: dueAt,
      updated_at: at,
      ...extra,
    };
    const running = from === "running";
    const stored = await this.db
      .transaction()
      .execute(async (tx) => {
        const updated = await workflowStore.updateExecutionIf(
          tx,
          state.id,
          running ? "running" : "waiting",
          running ? this.options.hostId : null,
          patch,
          running ? undefined : from.waiting,
        );
        if (!updated) throw lost;
        await workflowStore.insertEvents(tx, rows);
        return true;
      })
      .catch((err) => {
        if (err === lost) return false;
        throw err;
      });
    if (!stored) return false;

    Object.assign(state, { vars, currentStepId, entries, status, updatedAt: at });
    state.errorDetails = error;
    if (state.recent) {
      state.recent.push(...rows.map(toFlowEvent));
      if (state.recent.length > 10) state.recent.splice(0, state.recent.length - 10);
    }
    if (status === "ended" || status === "failed") this.emit(state);
    return true;
  }

  private emit(state: RunState) {
    const event =
      state.status === "ended" ? "workflow.execution.ended" : "workflow.execution.failed";
    for (const listener of this.listeners) {
      try {
        listener({ event, projectId: state.projectId, execution: state });
      } catch (err) {
        this.options.log(`a listener of ${event} failed: ${(err as Error).stack}`);
      }
    }
  }

  private eventRows(executionId: string, at: string, events: PendingEvent[]): EventInsert[] {
    return events.map((e) => ({
      id: crypto.randomUUID(),
      execution_id: executionId,
      event_type: e.event_type,
      step_id: e.step_id,
      edge_label: e.edge_label ?? null,
      payload: JSON.stringify(e.payload),
      created_at: at,
    }));
  }

  /** The compiled definition of a stored version (immutable, so cached). */
  private async definition(versionId: string): Promise<CompiledDefinition> {
    let def = this.definitions.get(versionId);
    if (def) return def;
    const row = await workflowStore.version(this.db, versionId);
    if (!row) throw new Error(`workflow version ${versionId} is missing`);
    def = compile(JSON.parse(row.definition) as Definition);
    if (this.definitions.size >= 1000)
      this.definitions.delete(this.definitions.keys().next().value!);
    this.definitions.set(versionId, def);
    return def;
  }

  private async toState(row: ExecutionRow): Promise<RunState> {
    return {
      id: row.id,
      projectId: row.project_id,
      workflowId: row.workflow_id,
      workflowName: row.workflow_name,
      status: row.status,
      vars: JSON.parse(row.vars),
      context: JSON.parse(row.context),
      system: JSON.parse(row.system),
      metadata: JSON.parse(row.metadata),
      whatsappContext: row.whatsapp_context ? JSON.parse(row.whatsapp_context) : null,
      conversationId: row.conversation_id,
      currentStepId: row.current_step_id,
      entries: JSON.parse(row.step_entries),
      def: await this.definition(row.version_id),
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      errorDetails: row.error_details ? JSON.parse(row.error_details) : null,
    };
  }

  /** The last 10 events of an execution, oldest first, as functions see them. */
  async recentEvents(executionId: string): Promise<FlowEvent[]> {
    return (await workflowStore.recentEvents(this.db, executionId, 10)).map(toFlowEvent);
  }
}

const lost = new Error("the execution changed meanwhile");

type Resume = { reason: "input"; input: string; whatsappContext?: unknown } | { reason: "timeout" };

function toFlowEvent(row: { event_type: string; payload: string; created_at: string }): FlowEvent {
  return {
    event_type: row.event_type,
    payload: JSON.parse(row.payload),
    created_at: row.created_at,
  };
}
