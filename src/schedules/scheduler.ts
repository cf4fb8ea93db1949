import type { FunctionService } from "../functions/service.js";
import type { InvocationInput, Invoker } from "../functions/invoke.js";
import type { Clock } from "../store/clock.js";
import { isStoreUnavailable, type Store } from "../store/db.js";
import type { WorkflowService } from "../workflows/service.js";
import type { Cron } from "croner";
import { compile, entryKey, nextAfter } from "./cron.js";

export interface SchedulerOptions {
  hostId: string;
  clock: Clock;
  publicUrl: string;
  /** A tick later than this is skipped (the host was stalled or the clock jumped). */
  staleMs: number;
  /** How often every schedule is read afresh; changes also arrive at once. */
  reloadMs: number;
  log: (line: string) => void;
}

/** One schedule entry of a function, or one cron trigger of a workflow, with its next tick. */
interface Entry {
  /** `function:<id>` or `workflow:<id>`: what ticks are claimed for. */
  owner: string;
  /** Which entry of the owner's list (see `entryKey`). */
  key: string;
  kind: "function" | "workflow";
  id: string;
  projectId: string;
  cron: string;
  timezone: string;
  body: unknown;
  /** The next tick, epoch ms (Infinity when the expression never fires again). */
  next: number;
  /** The expression compiled once (computing a next time is then cheap). */
  job: Cron | null;
}

/** Longest a timer is set for; the schedules are looked at again at least this often. */
const maxSleepMs = 30_000;
/** Claims of ticks older than this are deleted. */
const tickRetentionMs = 24 * 60 * 60_000;

/** The invocation a schedule tick sends to a function that has no `scheduled` (section 8.2). */
export function cronInput(
  publicUrl: string,
  functionId: string,
  entry: { cron: string; body: unknown },
  scheduledTime: number,
): InvocationInput {
  return {
    url: `${publicUrl}/platform/v1/functions/${functionId}/invoke`,
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-workerbase-cron": entry.cron,
      "x-workerbase-scheduled-time": new Date(scheduledTime).toISOString(),
    },
    body: Buffer.from(JSON.stringify(entry.body ?? {})),
    trigger: "cron",
    tick: true,
  };
}

/**
 * Runs schedule ticks. Every host keeps every schedule in memory with its next time and wakes
 * for the earliest; a due tick is claimed in the store first (the insert of its key, unique
 * per owner, entry and time), so with any number of hosts each tick runs once. Times are
 * computed from now: ticks missed while no host ran are not replayed.
 */
export class Scheduler {
  private entries = new Map<string, Entry>();
  private timer?: NodeJS.Timeout;
  private reloadTimer?: NodeJS.Timeout;
  private reloading?: Promise<void>;
  private reloadAgain = false;
  private stopped = true;
  private running = new Set<Promise<void>>();
  private unsubscribe: (() => void)[] = [];
  private lastPrune = 0;
  private outage = false;

  constructor(
    private db: Store,
    private functions: FunctionService,
    private invoker: Invoker,
    private workflows: WorkflowService | undefined,
    private options: SchedulerOptions,
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    const soon = () => this.reloadSoon();
    this.unsubscribe.push(this.functions.onChange(soon));
    if (this.workflows) this.unsubscribe.push(this.workflows.onChange(soon));
    if (this.options.clock.onJump)
      this.unsubscribe.push(this.options.clock.onJump(() => this.wake()));
    await this.reload();
  }

  /** Stops waking; ticks already started get until `deadline` (epoch ms) to finish. */
  async stop(deadline = Date.now()): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.reloadTimer);
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    const wait = Math.max(0, deadline - Date.now());
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.running]),
      new Promise((r) => (timer = setTimeout(r, wait))),
    ]);
    clearTimeout(timer);
  }

  /** Ticks started and not yet finished (tests, shutdown). */
  idle(): Promise<void> {
    return Promise.allSettled([...this.running]).then(() => {});
  }

  /** Reads the schedules again shortly (a burst of changes is one read). */
  reloadSoon(): void {
    if (this.stopped) return;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => void this.reload(), 10);
  }

  /** Resolves once a read that started after this call has finished. */
  async reloadNow(): Promise<void> {
    await this.reload();
    while (this.reloading) await this.reloading;
  }

  /** Reads every schedule from the store; entries that did not change keep their next tick. */
  async reload(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = this.read()
      .catch((err) => {
        if (!this.outage)
          this.options.log(`reading the schedules failed: ${(err as Error).message}`);
        this.outage = true;
      })
      .finally(() => {
        this.reloading = undefined;
        if (this.reloadAgain) {
          this.reloadAgain = false;
          void this.reload();
        } else this.arm();
      });
    return this.reloading;
  }

  private async read(): Promise<void> {
    const functions = await this.db
      .selectFrom("functions")
      .select(["id", "project_id", "schedules"])
      .where("schedules", "!=", "[]")
      .where("live_deployment_id", "is not", null)
      .execute();
    const workflows = this.workflows
      ? await this.db
          .selectFrom("workflows")
          .select(["id", "project_id", "triggers"])
          .where("triggers", "like", '%"cron"%')
          .execute()
      : [];
    this.outage = false;
    const now = this.options.clock.now();
    const fresh = new Map<string, Entry>();
    const add = (entry: Omit<Entry, "next" | "job">) => {
      const id = `${entry.owner}|${entry.key}`;
      const known = this.entries.get(id);
      const job = known?.job ?? compile(entry.cron, entry.timezone);
      fresh.set(id, { ...entry, job, next: known?.next ?? nextAfter(job, now) });
    };
    for (const row of functions) {
      const list = JSON.parse(row.schedules) as { cron: string; timezone: string; body: unknown }[];
      list.forEach((s, i) =>
        add({
          owner: `function:${row.id}`,
          key: entryKey(i, s),
          kind: "function",
          id: row.id,
          projectId: row.project_id,
          cron: s.cron,
          timezone: s.timezone,
          body: s.body,
        }),
      );
    }
    for (const row of workflows) {
      const triggers = JSON.parse(row.triggers) as {
        type: string;
        cron?: string;
        timezone?: string;
      }[];
      triggers.forEach((t, i) => {
        if (t.type !== "cron" || !t.cron) return;
        add({
          owner: `workflow:${row.id}`,
          key: entryKey(i, { cron: t.cron, timezone: t.timezone }),
          kind: "workflow",
          id: row.id,
          projectId: row.project_id,
          cron: t.cron,
          timezone: t.timezone ?? "UTC",
          body: null,
        });
      });
    }
    this.entries = fresh;
  }

  /** Sets the timer for the earliest tick (or the next periodic read). */
  private arm(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const now = this.options.clock.now();
    let earliest = Infinity;
    for (const entry of this.entries.values()) earliest = Math.min(earliest, entry.next);
    const delay = Math.max(0, Math.min(earliest - now, maxSleepMs));
    this.timer = setTimeout(() => this.wake(), delay);
    this.timer.unref();
  }

  private lastRead = 0;

  /** Starts every tick that is due, then sleeps until the next one. */
  private wake(): void {
    if (this.stopped) return;
    const now = this.options.clock.now();
    const due: Entry[] = [];
    for (const entry of this.entries.values()) if (entry.next <= now) due.push(entry);
    // Every claim is on its way before any next time is worked out.
    for (const entry of due)
      if (now - entry.next <= this.options.staleMs) this.track(this.fire(entry, entry.next));
    for (const entry of due) entry.next = nextAfter(entry.job, Math.max(now, entry.next));
    if (now - this.lastPrune > 60 * 60_000) {
      this.lastPrune = now;
      this.track(this.prune(now));
    }
    if (Date.now() - this.lastRead > this.options.reloadMs) {
      this.lastRead = Date.now();
      void this.reload();
    } else this.arm();
  }

  private track(task: Promise<void>): void {
    this.running.add(task);
    void task.finally(() => this.running.delete(task));
  }

  /** Claims the tick at `at` of `entry` and, when this host won it, runs it. */
  private async fire(entry: Entry, at: number): Promise<void> {
    try {
      const claimed = await this.db
        .insertInto("schedule_ticks")
        .values({
          owner: entry.owner,
          entry: entry.key,
          at,
          host_id: this.options.hostId,
          claimed_at: this.options.clock.now(),
        })
        .onConflict((oc) => oc.doNothing())
        .executeTakeFirst();
      if (Number(claimed.numInsertedOrUpdatedRows ?? 0) !== 1) return; // another host has it
      if (entry.kind === "workflow") {
        await this.workflows?.startForCron(entry.id, {
          cron: entry.cron,
          timezone: entry.timezone,
          scheduledTime: at,
        });
        return;
      }
      const fn = await this.functions.resolveForInvoke(entry.id, entry.projectId);
      // Gone, no longer deployed, or held back: the tick is skipped.
      if (!fn || this.invoker.refusal(fn)) return;
      // A failure is in the invocation's record; ticks are not retried.
      await this.invoker.run(fn, cronInput(this.options.publicUrl, fn.id, entry, at));
    } catch (err) {
      const why = isStoreUnavailable(err) ? "the store is unavailable" : (err as Error).message;
      this.options.log(
        `the ${new Date(at).toISOString()} tick of ${entry.owner} (${entry.cron}) did not run: ${why}`,
      );
    }
  }

  private async prune(now: number): Promise<void> {
    await this.db
      .deleteFrom("schedule_ticks")
      .where("at", "<", now - tickRetentionMs)
      .execute()
      .catch(() => {}); // tried again in an hour
  }
}
