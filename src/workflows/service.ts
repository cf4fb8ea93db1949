import crypto from "node:crypto";
import { AppError } from "../http/errors.js";
import { isUuid } from "../http/validate.js";
import { isUniqueViolation, now, type Store } from "../store/db.js";
import type { FunctionService } from "../functions/service.js";
import { slugify } from "../functions/schema.js";
import { validateDefinition, type FunctionRef } from "./definition.js";
import type { ExecutionFinished, WorkflowEngine } from "./engine.js";
import type { ExecutionCreate, InboundTrigger, WorkflowCreate, WorkflowUpdate } from "./schema.js";
import type { ChangeFeed } from "../store/changes.js";
import type { RunState } from "./steps.js";
import {
  workflowStore,
  type EventRow,
  type ExecutionRow,
  type ExecutionStatus,
  type WorkflowRow,
} from "./store.js";

/** An execution as the API shows it (GET /workflow_executions/{id}). */
export interface ExecutionView {
  id: string;
  workflow_id: string;
  status: ExecutionStatus;
  vars: Record<string, unknown>;
  context: Record<string, unknown>;
  system: Record<string, unknown>;
  current_step_id: string;
  error_details: unknown;
  created_at: string;
  updated_at: string;
}

/** What `onExecutionFinished` listeners receive (the events of §6.2). */
export interface FinishedExecution {
  event: ExecutionFinished["event"];
  projectId: string;
  workflowName: string;
  /** Set for executions started (or resumed) for a WhatsApp conversation. */
  conversationId: string | null;
  execution: ExecutionView;
}

/** Options of an execution started by something other than the API (WhatsApp, later cron). */
export interface TriggerStart {
  vars?: Record<string, unknown>;
  context?: Record<string, unknown>;
  /** `whatsapp_context` of §5.3: `{conversation, messages}`. */
  whatsappContext?: unknown;
  /** Ties the execution to a conversation, so `resumeWaitingForConversation` finds it. */
  conversationId?: string;
  triggerType?: "inbound_message" | "whatsapp_event";
}

/** A tick of a workflow's `cron` trigger. */
export interface CronTick {
  cron: string;
  timezone: string;
  /** The tick's time, epoch ms. */
  scheduledTime: number;
}

function viewOf(state: RunState): ExecutionView {
  return {
    id: state.id,
    workflow_id: state.workflowId,
    status: state.status,
    vars: state.vars,
    context: state.context,
    system: state.system,
    current_step_id: state.currentStepId,
    error_details: state.errorDetails,
    created_at: state.createdAt,
    updated_at: state.updatedAt,
  };
}

/** Workflow definitions and their executions: the rules; the engine runs them. */
export class WorkflowService {
  constructor(
    private db: Store,
    private functions: FunctionService,
    private engine: WorkflowEngine,
    private options: { maxVarsBytes: number; changes?: ChangeFeed },
  ) {
    options.changes?.on((change) => {
      if (change.topic === "workflow") this.notify(change.key);
    });
    options.changes?.onReset(() => this.notify(null));
  }

  private changeListeners = new Set<(workflowId: string | null) => void>();

  /**
   * Calls `listener` after a workflow is created, changed or deleted, here or on another
   * host (null: anything may have changed). Returns an unsubscribe.
   */
  onChange(listener: (workflowId: string | null) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private notify(workflowId: string | null): void {
    for (const listener of this.changeListeners) listener(workflowId);
  }

  /** Tells this host's listeners and every other host that a workflow changed. */
  private async changed(workflowId: string): Promise<void> {
    this.notify(workflowId);
    await this.options.changes?.publish([{ topic: "workflow", key: workflowId }]).catch(() => {
      // The other hosts read every schedule afresh now and then (Scheduler's reload).
    });
  }

  render(row: WorkflowRow) {
    return {
      id: row.id,
      name: row.name,
      slug: row.slug,
      definition: JSON.parse(row.definition),
      triggers: JSON.parse(row.triggers),
      project_id: row.project_id,
      created_at: row.created_at,
      updated_at: row.updated_at,
    };
  }

  renderExecution(row: ExecutionRow): ExecutionView {
    return {
      id: row.id,
      workflow_id: row.workflow_id,
      status: row.status,
      vars: JSON.parse(row.vars),
      context: JSON.parse(row.context),
      system: JSON.parse(row.system),
      current_step_id: row.current_step_id,
      error_details: row.error_details ? JSON.parse(row.error_details) : null,
      created_at: row.created_at,
      updated_at: row.updated_at,
    };
  }

  renderEvent(row: EventRow) {
    return {
      id: row.id,
      event_type: row.event_type,
      created_at: row.created_at,
      step_id: row.step_id,
      edge_label: row.edge_label,
      payload: JSON.parse(row.payload),
    };
  }

  list(projectId: string) {
    return workflowStore.list(this.db, projectId);
  }

  /** A workflow of the project by id or slug; anything else is a 404. */
  async get(projectId: string, idOrSlug: string): Promise<WorkflowRow> {
    const row = isUuid(idOrSlug)
      ? await workflowStore.byId(this.db, idOrSlug.toLowerCase())
      : await workflowStore.bySlug(this.db, projectId, idOrSlug);
    if (!row || row.project_id !== projectId) throw new AppError("NOT_FOUND", "Workflow not found");
    return row;
  }

  private validate(projectId: string, definition: unknown) {
    return validateDefinition(definition, async (ref: FunctionRef) => {
      try {
        await this.functions.get(projectId, (ref.function_id ?? ref.function_slug)!);
        return true;
      } catch {
        return false;
      }
    });
  }

  private slugTaken(slug: string) {
    return new AppError(
      "CONFLICT",
      `A workflow with the slug "${slug}" already exists in this project`,
      [{ field: "slug", message: "already taken" }],
    );
  }

  async create(projectId: string, input: WorkflowCreate): Promise<WorkflowRow> {
    if (input.definition === undefined)
      throw new AppError("INVALID_INPUT", "Invalid definition: is required", [
        { field: "definition", message: "is required" },
      ]);
    const definition = await this.validate(projectId, input.definition);
    const slug = input.slug ?? slugify(input.name);
    const at = now();
    const id = crypto.randomUUID();
    const versionId = crypto.randomUUID();
    try {
      await this.db.transaction().execute(async (tx) => {
        await workflowStore.insertVersion(tx, {
          id: versionId,
          workflow_id: id,
          definition: JSON.stringify(definition),
          created_at: at,
        });
        await workflowStore.insert(tx, {
          id,
          project_id: projectId,
          name: input.name,
          slug,
          version_id: versionId,
          triggers: JSON.stringify(input.triggers ?? []),
          created_at: at,
          updated_at: at,
        });
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw this.slugTaken(slug);
      throw err;
    }
    await this.changed(id);
    return (await workflowStore.byId(this.db, id))!;
  }

  /** Saves changes; a new definition applies to executions started from now on. */
  async update(projectId: string, idOrSlug: string, input: WorkflowUpdate): Promise<WorkflowRow> {
    const row = await this.get(projectId, idOrSlug);
    const at = now();
    const patch: Parameters<typeof workflowStore.update>[2] = { updated_at: at };
    if (input.name !== undefined) patch.name = input.name;
    if (input.slug !== undefined) patch.slug = input.slug;
    if (input.triggers !== undefined) patch.triggers = JSON.stringify(input.triggers);
    const definition =
      input.definition === undefined ? undefined : await this.validate(projectId, input.definition);
    try {
      await this.db.transaction().execute(async (tx) => {
        if (definition) {
          patch.version_id = crypto.randomUUID();
          await workflowStore.insertVersion(tx, {
            id: patch.version_id,
            workflow_id: row.id,
            definition: JSON.stringify(definition),
            created_at: at,
          });
        }
        await workflowStore.update(tx, row.id, patch);
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw this.slugTaken(input.slug!);
      throw err;
    }
    await this.changed(row.id);
    return (await workflowStore.byId(this.db, row.id))!;
  }

  /** Deletes a workflow; its executions keep running on the definition they started with. */
  async remove(projectId: string, idOrSlug: string): Promise<void> {
    const row = await this.get(projectId, idOrSlug);
    await workflowStore.delete(this.db, row.id);
    await this.db.deleteFrom("schedule_ticks").where("owner", "=", `workflow:${row.id}`).execute();
    await this.changed(row.id);
  }

  /**
   * Starts one execution of a workflow for a tick of its `cron` trigger (`trigger_type` cron;
   * `context.scheduled_time` is the tick's time). Null when the workflow is gone.
   */
  async startForCron(workflowId: string, tick: CronTick): Promise<ExecutionView | null> {
    const workflow = await workflowStore.byId(this.db, workflowId);
    if (!workflow) return null;
    const scheduledTime = new Date(tick.scheduledTime).toISOString();
    const state = await this.engine.begin({
      projectId: workflow.project_id,
      workflowId: workflow.id,
      workflowName: workflow.name,
      versionId: workflow.version_id,
      vars: {},
      context: { cron: tick.cron, timezone: tick.timezone, scheduled_time: scheduledTime },
      metadata: {
        cron: { expression: tick.cron, timezone: tick.timezone, scheduled_time: scheduledTime },
      },
      triggerType: "cron",
    });
    return viewOf(state);
  }

  private checkSize(field: string, value: unknown) {
    if (Buffer.byteLength(JSON.stringify(value)) > this.options.maxVarsBytes) {
      throw new AppError(
        "INVALID_INPUT",
        `Invalid ${field}: larger than ${this.options.maxVarsBytes} bytes`,
        [{ field, message: `must be at most ${this.options.maxVarsBytes} bytes as JSON` }],
      );
    }
  }

  /** Starts an execution through the API (`system.trigger_type` api_call). */
  async startExecution(
    projectId: string,
    idOrSlug: string,
    input: ExecutionCreate,
    request: { ip: string | null },
  ): Promise<ExecutionView> {
    const workflow = await this.get(projectId, idOrSlug);
    const vars = input.vars ?? {};
    const context = input.context ?? {};
    this.checkSize("execution.vars", vars);
    this.checkSize("execution.context", context);
    const state = await this.engine.begin({
      projectId,
      workflowId: workflow.id,
      workflowName: workflow.name,
      versionId: workflow.version_id,
      vars,
      context,
      metadata: { request: { ip: request.ip, timestamp: now() } },
      triggerType: "api_call",
    });
    return viewOf(state);
  }

  async getExecution(projectId: string, id: string): Promise<ExecutionRow> {
    const row = isUuid(id) ? await workflowStore.execution(this.db, id.toLowerCase()) : undefined;
    if (!row || row.project_id !== projectId)
      throw new AppError("NOT_FOUND", "Workflow execution not found");
    return row;
  }

  async listExecutions(
    projectId: string,
    idOrSlug: string,
    status: ExecutionStatus | undefined,
    limit: number,
  ) {
    const workflow = await this.get(projectId, idOrSlug);
    return workflowStore.executions(this.db, workflow.id, status, limit);
  }

  /** Events newest first; `after` (an event id) pages to older ones. */
  async events(projectId: string, executionId: string, after: string | undefined, limit: number) {
    const execution = await this.getExecution(projectId, executionId);
    const rows = await workflowStore.events(this.db, execution.id, after, limit + 1);
    if (!rows) {
      throw new AppError("INVALID_INPUT", "Invalid after: not an event of this execution", [
        { field: "after", message: "not an event of this execution" },
      ]);
    }
    const page = rows.slice(0, limit);
    return { events: page, nextCursor: rows.length > limit ? page[page.length - 1].id : null };
  }

  /** Continues a waiting execution with the user's input; a 409 when it is not waiting. */
  async resume(projectId: string, executionId: string, input: string) {
    const row = await this.getExecution(projectId, executionId);
    const state = await this.engine.resume(row.id, { reason: "input", input });
    if (!state) {
      const current = (await workflowStore.execution(this.db, row.id))?.status ?? row.status;
      throw new AppError("CONFLICT", `The execution is not waiting (status: ${current})`);
    }
    return { message: "Execution resumed", execution_id: row.id, status: state.status };
  }

  /**
   * Calls `listener` after each execution of any project ends or fails, with the execution as
   * GET /workflow_executions/{id} shows it. Returns an unsubscribe function.
   */
  onExecutionFinished(listener: (e: FinishedExecution) => void): () => void {
    return this.engine.onFinished((e) =>
      listener({
        event: e.event,
        projectId: e.projectId,
        workflowName: e.execution.workflowName,
        conversationId: e.execution.conversationId,
        execution: viewOf(e.execution),
      }),
    );
  }

  /**
   * Starts an execution of every workflow of the project with a matching trigger (an
   * `inbound_message` trigger without `phone_number_id` matches any number). Returns them.
   */
  async startForTrigger(
    projectId: string,
    trigger: InboundTrigger,
    options: TriggerStart = {},
  ): Promise<ExecutionView[]> {
    const started: ExecutionView[] = [];
    for (const workflow of await workflowStore.withTriggers(this.db, projectId)) {
      const triggers = JSON.parse(workflow.triggers) as {
        type: string;
        phone_number_id?: string;
      }[];
      const matches = triggers.some(
        (t) =>
          t.type === trigger.type &&
          (t.phone_number_id === undefined || t.phone_number_id === trigger.phone_number_id),
      );
      if (!matches) continue;
      const state = await this.engine.begin({
        projectId,
        workflowId: workflow.id,
        workflowName: workflow.name,
        versionId: workflow.version_id,
        vars: options.vars ?? {},
        context: options.context ?? {},
        metadata: {},
        triggerType: options.triggerType ?? "inbound_message",
        whatsappContext: options.whatsappContext,
        conversationId: options.conversationId,
      });
      started.push(viewOf(state));
    }
    return started;
  }

  /**
   * Resumes every waiting execution of the project started for `conversationId` with the
   * message text (and a fresh `whatsapp_context`, when given). Returns those resumed; an
   * empty list means none was waiting.
   */
  async resumeWaitingForConversation(
    projectId: string,
    conversationId: string,
    input: string,
    options: { whatsappContext?: unknown } = {},
  ): Promise<ExecutionView[]> {
    const resumed: ExecutionView[] = [];
    for (const { id } of await workflowStore.waitingInConversation(
      this.db,
      projectId,
      conversationId,
    )) {
      const state = await this.engine.resume(id, {
        reason: "input",
        input,
        whatsappContext: options.whatsappContext,
      });
      if (state) resumed.push(viewOf(state));
    }
    return resumed;
  }
}
