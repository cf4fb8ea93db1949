import type { Insertable, Selectable, Updateable } from "kysely";
import type { Store } from "../store/db.js";
import { claim, type ClaimOptions, type LeaseSpec } from "../store/leases.js";
import type {
  WorkflowEventsTable,
  WorkflowExecutionsTable,
  WorkflowsTable,
  WorkflowVersionsTable,
} from "../store/schema.js";

export type WorkflowRow = Selectable<WorkflowsTable> & { definition: string };
export type ExecutionRow = Selectable<WorkflowExecutionsTable>;
export type EventRow = Selectable<WorkflowEventsTable>;
export type EventInsert = Insertable<WorkflowEventsTable>;
export type ExecutionPatch = Updateable<WorkflowExecutionsTable>;
export type ExecutionStatus = ExecutionRow["status"];

/**
 * Running executions as leased work: `due_at` is a running execution's lease expiry (and a
 * waiting one's timeout, which no lease claims).
 */
export const executionLeases: LeaseSpec<"workflow_executions"> = {
  table: "workflow_executions",
  id: "id",
  owner: "lease_owner",
  until: "due_at",
  order: ["due_at"],
  eligible: (eb) => eb("c.status", "=", "running"),
};

/** Workflows with their current definition. */
function withDefinition(db: Store) {
  return db
    .selectFrom("workflows as w")
    .innerJoin("workflow_versions as v", "v.id", "w.version_id")
    .selectAll("w")
    .select("v.definition");
}

/** Queries for workflows, their versions, executions and events. */
export const workflowStore = {
  list: (db: Store, projectId: string) =>
    withDefinition(db)
      .where("w.project_id", "=", projectId)
      .orderBy("w.created_at", "desc")
      .execute(),

  byId: (db: Store, id: string) => withDefinition(db).where("w.id", "=", id).executeTakeFirst(),

  bySlug: (db: Store, projectId: string, slug: string) =>
    withDefinition(db)
      .where("w.project_id", "=", projectId)
      .where("w.slug", "=", slug)
      .executeTakeFirst(),

  insert: (db: Store, row: Insertable<WorkflowsTable>) =>
    db.insertInto("workflows").values(row).execute(),

  update: (db: Store, id: string, patch: Updateable<WorkflowsTable>) =>
    db.updateTable("workflows").set(patch).where("id", "=", id).execute(),

  delete: (db: Store, id: string) => db.deleteFrom("workflows").where("id", "=", id).execute(),

  insertVersion: (db: Store, row: Insertable<WorkflowVersionsTable>) =>
    db.insertInto("workflow_versions").values(row).execute(),

  version: (db: Store, id: string) =>
    db.selectFrom("workflow_versions").selectAll().where("id", "=", id).executeTakeFirst(),

  /** Workflows of a project that some trigger may start (those with any trigger). */
  withTriggers: (db: Store, projectId: string) =>
    withDefinition(db)
      .where("w.project_id", "=", projectId)
      .where("w.triggers", "!=", "[]")
      .execute(),

  execution: (db: Store, id: string) =>
    db.selectFrom("workflow_executions").selectAll().where("id", "=", id).executeTakeFirst(),

  executions: (
    db: Store,
    workflowId: string,
    status: ExecutionStatus | undefined,
    limit: number,
  ) => {
    let q = db.selectFrom("workflow_executions").selectAll().where("workflow_id", "=", workflowId);
    if (status) q = q.where("status", "=", status);
    return q.orderBy("created_at", "desc").orderBy("id").limit(limit).execute();
  },

  insertExecution: (db: Store, row: Insertable<WorkflowExecutionsTable>) =>
    db.insertInto("workflow_executions").values(row).execute(),

  /**
   * Applies `patch` only while the execution is in `status` (and held by `owner`, and last
   * updated at `updatedAt`, if given).
   */
  updateExecutionIf: async (
    db: Store,
    id: string,
    status: ExecutionStatus,
    owner: string | null,
    patch: ExecutionPatch,
    updatedAt?: string,
  ): Promise<boolean> => {
    let q = db
      .updateTable("workflow_executions")
      .set(patch)
      .where("id", "=", id)
      .where("status", "=", status);
    if (owner !== null) q = q.where("lease_owner", "=", owner);
    if (updatedAt !== undefined) q = q.where("updated_at", "=", updatedAt);
    const result = await q.executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  },

  /**
   * Claims running executions whose lease ran out (their host died), or that this host held
   * before a restart (`ownToo`), oldest lease first.
   */
  claim: (db: Store, o: ClaimOptions): Promise<ExecutionRow[]> => claim(db, executionLeases, o),

  /** Waiting executions whose timeout has passed (each resumes by a conditional update). */
  timedOut: (db: Store, nowMs: number, limit: number) =>
    db
      .selectFrom("workflow_executions")
      .select("id")
      .where("status", "=", "waiting")
      .where("due_at", "<=", nowMs)
      .orderBy("due_at")
      .limit(limit)
      .execute(),

  waitingInConversation: (db: Store, projectId: string, conversationId: string) =>
    db
      .selectFrom("workflow_executions")
      .select("id")
      .where("project_id", "=", projectId)
      .where("conversation_id", "=", conversationId)
      .where("status", "=", "waiting")
      .orderBy("created_at")
      .execute(),

  insertEvents: (db: Store, rows: EventInsert[]) =>
    db.insertInto("workflow_events").values(rows).execute(),

  /** The last `n` events of an execution, oldest first. */
  recentEvents: async (db: Store, executionId: string, n: number) =>
    (
      await db
        .selectFrom("workflow_events")
        .selectAll()
        .where("execution_id", "=", executionId)
        .orderBy("seq", "desc")
        .limit(n)
        .execute()
    ).reverse(),

  /** Events newest first, older than the event `after` when given. */
  events: async (db: Store, executionId: string, after: string | undefined, limit: number) => {
    let q = db.selectFrom("workflow_events").selectAll().where("execution_id", "=", executionId);
    if (after) {
      const cursor = await db
        .selectFrom("workflow_events")
        .select("seq")
        .where("id", "=", after)
        .where("execution_id", "=", executionId)
        .executeTakeFirst();
      if (!cursor) return null;
      q = q.where("seq", "<", cursor.seq);
    }
    return q.orderBy("seq", "desc").limit(limit).execute();
  },
};
