import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { childEnv } from "../host/childenv.js";
import { isUuid } from "../http/validate.js";
import type { ExportResult, ImportResult } from "./dump.js";
import type { D1Query, D1Value, RawResult, StatementsResult, TableInfo } from "./service.js";

/** What the host asks of a database child; one message is one transaction (or a listing). */
export type ChildOp =
  | { op: "query"; queries: D1Query[] }
  | { op: "statements"; sql: string; params: D1Value[] }
  | { op: "tables" }
  | { op: "export"; maxBytes: number }
  | { op: "import"; sql: string };

export type ChildRequest = { id: number; file: string } & ChildOp;

export type ChildReply =
  | { ready: true }
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: string };

/** A failed database operation: the SQL failed, it ran too long, or its process died. */
export class DbError extends Error {
  constructor(
    readonly kind: "sql" | "timeout" | "crashed" | "stopped",
    message: string,
  ) {
    super(message);
  }
}

/** Where a project's operation runs: `here` runs it on this host. */
export interface DbRouting {
  run(
    projectId: string,
    op: ChildOp,
    timeoutMs: number,
    here: () => Promise<unknown>,
  ): Promise<unknown>;
}

/** D1's own sentence for a statement that ran past its time limit. */
export const timeoutMessage =
  "D1 DB storage operation exceeded timeout which caused object to be reset.";

export interface ExecutorOptions {
  /** The folder of the project databases (WORKERBASE_D1_DIR, default `<data dir>/d1`). */
  dir: string;
  /** Child processes; each project's statements run in one of them at a time. */
  processes: number;
  /** Time limit of one statement or batch when the caller gives none. */
  timeoutMs: number;
  /** Database files a child keeps open. */
  maxOpenPerProcess: number;
  /** Largest answer (about its JSON size) a child sends back. */
  maxResultBytes: number;
  log: (line: string) => void;
  /** Each commit reaches the disk before it is acknowledged (a cluster's takeover needs it). */
  synchronousCommits?: boolean;
}

interface Job {
  id: number;
  projectId: string;
  request: ChildRequest;
  timeoutMs: number;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

interface Slot {
  index: number;
  child?: ChildProcess;
  /** Takes work now. */
  ready: boolean;
  /** The current child said it was ready at least once. */
  started: boolean;
  current?: { job: Job; timer: NodeJS.Timeout; startedAt: number };
  queue: Job[];
  /** The project whose statement got this child killed, until the child is gone. */
  killedFor?: string;
  failedStarts: number;
}

/** A job running longer than this makes its process a poor home for other projects' work. */
const stalledMs = 100;

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The compiled child script beside this file (or its TypeScript source under tsx). */
function childScript(): { script: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const js = path.join(path.dirname(here), "child.js");
  if (here.endsWith(".js") && fs.existsSync(js)) return { script: js, execArgv: [] };
  return { script: path.join(path.dirname(here), "child.ts"), execArgv: ["--import", "tsx"] };
}

/**
 * Runs project-database statements in a small pool of child processes, so that a tenant's
 * slow or endless SQL never blocks the host. A project's statements run in one child at a
 * time (its home child, by a hash of its id, unless that one is stuck on a long statement),
 * so writes to one file are serialized and never meet "database is locked". A statement
 * past its time limit gets its child SIGKILLed and replaced; the caller gets a D1 error.
 */
export class DbExecutor {
  private slots: Slot[];
  private owners = new Map<string, { slot: Slot; inFlight: number }>();
  private nextId = 1;
  private stopping = false;
  private timer: NodeJS.Timeout;
  private child = childScript();
  readonly stats = { restarts: 0, timeouts: 0 };

  constructor(private options: ExecutorOptions) {
    fs.mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    this.slots = Array.from({ length: Math.max(1, options.processes) }, (_, index) => ({
      index,
      ready: false,
      started: false,
      queue: [],
      failedStarts: 0,
    }));
    for (const slot of this.slots) this.spawn(slot);
    this.timer = setInterval(() => this.rebalance(), stalledMs);
    this.timer.unref();
  }

  /** D1 queries in one transaction, one result each. */
  query(projectId: string, queries: D1Query[], timeoutMs?: number): Promise<RawResult[]> {
    return this.run(projectId, { op: "query", queries }, timeoutMs) as Promise<RawResult[]>;
  }

  /** Several statements, each in its own transaction, stopping at the first error. */
  statements(
    projectId: string,
    sql: string,
    params: D1Value[],
    timeoutMs?: number,
  ): Promise<StatementsResult> {
    return this.run(
      projectId,
      { op: "statements", sql, params },
      timeoutMs,
    ) as Promise<StatementsResult>;
  }

  /** The project's tables with columns and row counts. */
  tables(projectId: string, timeoutMs?: number): Promise<TableInfo[]> {
    return this.run(projectId, { op: "tables" }, timeoutMs) as Promise<TableInfo[]>;
  }

  /** The database as SQL text (schema, then rows), failing past `maxBytes` of it. */
  exportSql(projectId: string, maxBytes: number, timeoutMs?: number): Promise<ExportResult> {
    return this.run(projectId, { op: "export", maxBytes }, timeoutMs) as Promise<ExportResult>;
  }

  /** Runs a SQL file in one transaction, all or nothing. */
  importSql(projectId: string, sql: string, timeoutMs?: number): Promise<ImportResult> {
    return this.run(projectId, { op: "import", sql }, timeoutMs) as Promise<ImportResult>;
  }

  /** PIDs of the running children (for tests and /healthz). */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.child?.pid ? [s.child.pid] : []));
  }

  private file(projectId: string): string {
    // The id becomes part of a path: only a UUID may.
    if (!isUuid(projectId)) throw new DbError("sql", "invalid project id");
    return path.join(this.options.dir, `${projectId.toLowerCase()}.sqlite`);
  }

  /**
   * Runs one operation on a project's database: here, or (in a cluster) on the host that owns
   * the database, as the router decides.
   */
  run(projectId: string, op: ChildOp, timeoutMs = this.options.timeoutMs): Promise<unknown> {
    if (!this.router) return this.runHere(projectId, op, timeoutMs);
    return this.router.run(projectId, op, timeoutMs, () => this.runHere(projectId, op, timeoutMs));
  }

  /** Sends operations of databases another host owns to that host (set once, in a cluster). */
  route(router: DbRouting): void {
    this.router = router;
  }

  private router?: DbRouting;

  /** Runs one operation in this host's own database processes. */
  runHere(projectId: string, op: ChildOp, timeoutMs = this.options.timeoutMs): Promise<unknown> {
    if (this.stopping)
      return Promise.reject(new DbError("stopped", "The database service is shutting down"));
    let file: string;
    try {
      file = this.file(projectId);
    } catch (err) {
      return Promise.reject(err);
    }
    let owner = this.owners.get(projectId);
    if (!owner) {
      owner = { slot: this.pick(projectId), inFlight: 0 };
      this.owners.set(projectId, owner);
    }
    owner.inFlight++;
    const slot = owner.slot;
    const id = this.nextId++;
    const done = () => {
      if (--owner!.inFlight === 0) this.owners.delete(projectId);
    };
    return new Promise<unknown>((resolve, reject) => {
      const request: ChildRequest = { id, file, ...op };
      slot.queue.push({ id, projectId, request, timeoutMs, resolve, reject });
      this.pump(slot);
    }).finally(done);
  }

  private stalled(slot: Slot): boolean {
    return !slot.ready || (!!slot.current && Date.now() - slot.current.startedAt > stalledMs);
  }

  /** The least busy child that is not stuck, if any. */
  private freest(): Slot | undefined {
    const load = (s: Slot) => s.queue.length + (s.current ? 1 : 0);
    return this.slots.filter((s) => !this.stalled(s)).sort((a, b) => load(a) - load(b))[0];
  }

  /** The project's home child, or the least busy one while the home one is stuck. */
  private pick(projectId: string): Slot {
    const home = this.slots[fnv1a(projectId) % this.slots.length];
    return this.stalled(home) ? (this.freest() ?? home) : home;
  }

  /**
   * Moves work waiting behind a stuck statement (or a dead child) to a free child: every
   * waiting job of a project moves together, and only projects with nothing running there, so
   * one file still sees one child at a time.
   */
  private rebalance(): void {
    for (const slot of this.slots) {
      if (slot.queue.length === 0 || !this.stalled(slot)) continue;
      const target = this.freest();
      if (!target || target === slot) continue;
      const running = slot.current?.job.projectId ?? slot.killedFor;
      const moving = slot.queue.filter((job) => job.projectId !== running);
      if (moving.length === 0) continue;
      slot.queue = slot.queue.filter((job) => job.projectId === running);
      for (const job of moving) {
        const owner = this.owners.get(job.projectId);
        if (owner) owner.slot = target;
        target.queue.push(job);
      }
      this.pump(target);
    }
  }

  private pump(slot: Slot): void {
    if (!slot.ready || slot.current || !slot.child) return;
    const job = slot.queue.shift();
    if (!job) return;
    const timer = setTimeout(() => this.timedOut(slot, job), job.timeoutMs);
    slot.current = { job, timer, startedAt: Date.now() };
    slot.child.send(job.request, (err) => {
      // Not delivered (the child just died): it never ran, so it waits for the next child.
      if (!err || slot.current?.job !== job) return;
      clearTimeout(timer);
      slot.current = undefined;
      slot.queue.unshift(job);
    });
  }

  private timedOut(slot: Slot, job: Job): void {
    if (slot.current?.job !== job) return;
    this.stats.timeouts++;
    this.options.log(
      `database process ${slot.index} ran a statement past ${job.timeoutMs} ms; killing it`,
    );
    slot.current = undefined;
    slot.killedFor = job.projectId;
    job.reject(new DbError("timeout", timeoutMessage));
    slot.ready = false;
    slot.child?.kill("SIGKILL");
  }

  private onReply(slot: Slot, reply: ChildReply): void {
    if ("ready" in reply) {
      slot.ready = true;
      slot.started = true;
      slot.failedStarts = 0;
      this.pump(slot);
      return;
    }
    const current = slot.current;
    if (!current || current.job.id !== reply.id) return;
    clearTimeout(current.timer);
    slot.current = undefined;
    if (reply.ok) current.job.resolve(reply.value);
    else current.job.reject(new DbError("sql", reply.error));
    this.pump(slot);
  }

  private spawn(slot: Slot): void {
    // setpriv's parent-death signal makes the kernel kill the child if the host dies, even by
    // SIGKILL, including while the child is busy inside SQLite and cannot notice.
    const node = [process.execPath, ...this.child.execArgv, this.child.script];
    const usePdeath = fs.existsSync("/usr/bin/setpriv");
    const child = spawn(
      usePdeath ? "/usr/bin/setpriv" : node[0],
      usePdeath ? ["--pdeathsig", "KILL", "--", ...node] : node.slice(1),
      {
        stdio: ["ignore", "pipe", "pipe", "ipc"],
        env: childEnv({
          WORKERBASE_DB_MAX_OPEN: String(this.options.maxOpenPerProcess),
          WORKERBASE_DB_MAX_RESULT_BYTES: String(this.options.maxResultBytes),
          ...(this.options.synchronousCommits ? { WORKERBASE_DB_SYNCHRONOUS: "FULL" } : {}),
        }),
      },
    );
    slot.child = child;
    slot.ready = false;
    slot.started = false;
    for (const stream of [child.stdout!, child.stderr!]) {
      readline
        .createInterface({ input: stream })
        .on("line", (line) => this.options.log(`[db ${slot.index}] ${line}`));
    }
    child.on("message", (reply: ChildReply) => {
      if (slot.child === child) this.onReply(slot, reply);
    });
    child.on("error", (err) => this.options.log(`database process ${slot.index}: ${err.message}`));
    child.on("exit", (code, signal) => this.onExit(slot, child, code, signal));
  }

  private onExit(
    slot: Slot,
    child: ChildProcess,
    code: number | null,
    signal: string | null,
  ): void {
    if (slot.child !== child) return;
    const started = slot.started;
    slot.child = undefined;
    slot.killedFor = undefined;
    slot.ready = false;
    if (slot.current) {
      clearTimeout(slot.current.timer);
      slot.current.job.reject(
        new DbError("crashed", "The database process stopped while running this statement"),
      );
      slot.current = undefined;
    }
    if (this.stopping) return;
    // The child is gone, so its projects' files are free: what waited moves on now.
    this.rebalance();
    this.stats.restarts++;
    this.options.log(
      `database process ${slot.index} exited (code ${code}, signal ${signal}); restarting`,
    );
    if (started) return this.spawn(slot);
    // It died before it could take work: fail what waits rather than hold it, and back off.
    slot.failedStarts++;
    for (const job of slot.queue.splice(0))
      job.reject(new DbError("crashed", "The database process could not start"));
    const delay = Math.min(5000, 100 * 2 ** slot.failedStarts);
    setTimeout(() => !this.stopping && !slot.child && this.spawn(slot), delay).unref();
  }

  /** Stops every child: idle ones close their files, busy ones are killed. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    const exits = this.slots.map((slot) => {
      for (const job of slot.queue.splice(0))
        job.reject(new DbError("stopped", "The database service is shutting down"));
      const child = slot.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      return new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        // A busy child cannot notice a closed channel; one still starting has nothing to close.
        if (slot.current || !slot.started) child.kill("SIGKILL");
        else child.disconnect();
        setTimeout(() => child.kill("SIGKILL"), 2000).unref();
      });
    });
    await Promise.all(exits);
  }
}
