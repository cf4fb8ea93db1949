import crypto from "node:crypto";
import { AppError } from "../http/errors.js";
import { isUuid } from "../http/validate.js";
import { isUniqueViolation, now, type Store } from "../store/db.js";
import type { RuntimePool } from "../runtime/pool.js";
import {
  acceptedShapes,
  describeLoadError,
  importProblem,
  moduleName,
  prepareModule,
  type CodeCheck,
} from "./code.js";
import { compileTypeScript, sourceMap, toSourcePositions } from "./typescript.js";
import type { TraceMap } from "@jridgewell/trace-mapping";
import type { InvokeResult } from "../runtime/process.js";
import {
  runtimeDefaults,
  slugify,
  type FunctionCreate,
  type FunctionUpdate,
  type RuntimeSettings,
} from "./schema.js";
import { functionStore, type DeploymentRow, type FunctionRow } from "./store.js";
import type { ChangeFeed } from "../store/changes.js";
import { systemClock, type Clock } from "../store/clock.js";
import { nextRuns, normalize, type Schedule } from "../schedules/cron.js";

/** What the invoke path needs of a function, cached in memory. */
export interface LiveFunction {
  id: string;
  projectId: string;
  slug: string;
  status: FunctionRow["status"];
  publicEndpoint: boolean;
  mode: "passthrough" | "wrapped";
  deploymentId: string | null;
  /** The version the live deployment is (null before the first successful deploy). */
  version: number | null;
  /** The Worker Loader id: deployment plus secrets versions, so a secret change loads anew. */
  workerId: string | null;
  timeoutMs: number;
  memoryMb: number;
  /** CPU budget (runtime_config.cpu_ms). */
  cpuMs: number;
  /** For TypeScript: maps positions in what the runtime reports back to the source's. */
  sourceMap: TraceMap | null;
}

/** What a deploy loads for a draft: its shape checked, TypeScript compiled, imports refused. */
function buildModule(
  code: string,
  language: string,
  flags: readonly string[],
): { check: CodeCheck; module: string; map: string | null } {
  let js = code;
  let map: string | null = null;
  if (language === "typescript") {
    const compiled = compileTypeScript(code);
    if (!compiled.ok)
      return { check: { ok: false, parsed: true, error: compiled.error }, module: code, map };
    js = compiled.code;
    map = compiled.map;
  }
  const imports = importProblem(js, flags);
  if (imports) {
    // Lines of the compiled module, named in the source's terms.
    const error = map ? toSourceLines(imports, js, map) : imports;
    return { check: { ok: false, parsed: true, error }, module: js, map };
  }
  const check = prepareModule(js);
  return { check, module: check.ok ? check.module : js, map };
}

/** `(line N)` of the compiled module as the TypeScript source's line. */
function toSourceLines(text: string, _js: string, map: string): string {
  const traced = sourceMap(map);
  return text.replace(/\(line (\d+)\)/g, (whole, line: string) => {
    const at = toSourcePositions(`${moduleName}:${line}:1`, traced).split(":")[1];
    return `(line ${at})`;
  });
}

export interface FunctionServiceOptions {
  publicUrl: string;
  strikesToHold: number;
  strikeWindowMs: number;
  holdMs: number;
  deployProbeTimeoutMs: number;
  /** Functions one project may have (maxFunctionsPerProject). */
  maxFunctionsPerProject: number;
  log: (line: string) => void;
  /** How changes reach (and come from) the other hosts of a cluster. */
  changes?: ChangeFeed;
  clock?: Clock;
  /** Versions kept per function (WORKERBASE_VERSIONS_KEPT); the live one always is. */
  versionsKept?: number;
}

/** Function lifecycle: create, edit, deploy (checked in the real runtime), and lookup. */
export class FunctionService {
  private live = new Map<string, LiveFunction>();
  private slugs = new Map<string, string>();
  /**
   * Bumped by every invalidation. A cache fill keeps what it read only if no invalidation
   * happened since it started: a fill whose store read straddled a deploy's commit (read the
   * old row, then the commit and its invalidation ran) would otherwise keep the old version
   * live until the next write to that function.
   */
  private generation = 0;
  private deploys = new Set<Promise<void>>();
  /**
   * Holds in force, as the store has them (strikes and holds live in the store, so a restart
   * or another host does not forgive a function): loaded at start, refreshed on every change.
   */
  private holds = new Map<string, number>();
  private clock: Clock;

  constructor(
    private db: Store,
    private pool: RuntimePool,
    private options: FunctionServiceOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    options.changes?.on((change) => {
      if (change.topic === "function") this.forget(change.key);
      else if (change.topic === "project") this.forgetProject(change.key);
      else if (change.topic === "hold") return this.refreshHold(change.key);
    });
    options.changes?.onReset(() => {
      this.forgetAll();
      void this.loadHolds();
    });
  }

  /** Reads the holds in force from the store (at start, and after missed changes). */
  async loadHolds(): Promise<void> {
    const generation = this.holdGeneration;
    const rows = await this.db
      .selectFrom("function_holds")
      .select(["function_id", "held_until"])
      .where("held_until", ">", this.clock.now())
      .execute()
      .catch((err) => {
        this.options.log(`reading held-back functions failed: ${(err as Error).message}`);
        return null;
      });
    if (!rows || generation !== this.holdGeneration) return;
    this.holds = new Map(rows.map((r) => [r.function_id, Number(r.held_until)]));
  }

  private holdGeneration = 0;

  private async refreshHold(functionId: string): Promise<void> {
    this.holdGeneration++;
    const row = await this.db
      .selectFrom("function_holds")
      .select("held_until")
      .where("function_id", "=", functionId)
      .executeTakeFirst();
    if (row && Number(row.held_until) > this.clock.now())
      this.holds.set(functionId, Number(row.held_until));
    else this.holds.delete(functionId);
  }

  render(row: FunctionRow, withCode = true) {
    return {
      id: row.id,
      name: row.name,
      slug: row.slug,
      description: row.description,
      ...(withCode ? { code: row.code } : {}),
      version: row.version,
      live_version: row.live_version,
      language: row.language,
      status: row.status,
      last_deployed_at: row.last_deployed_at,
      deploy_error: row.deploy_error,
      function_type: row.function_type,
      runtime_config: JSON.parse(row.runtime_config),
      endpoint_url: `${this.options.publicUrl}/platform/v1/functions/${row.id}/invoke`,
      public_endpoint: row.public_endpoint === 1,
      invoke_response_mode: row.invoke_response_mode,
      tool: row.tool ? JSON.parse(row.tool) : null,
      schedules: this.schedulesOf(row).map((entry) => {
        const next = row.live_deployment_id
          ? nextRuns(entry.cron, entry.timezone, this.clock.now())[0]
          : undefined;
        return { ...entry, next_run_at: next === undefined ? null : new Date(next).toISOString() };
      }),
      held_until: this.heldUntil(row.id),
      project_id: row.project_id,
      created_at: row.created_at,
      updated_at: row.updated_at,
    };
  }

  /** The function's schedule entries, defaults filled in. */
  schedulesOf(row: Pick<FunctionRow, "schedules">): Schedule[] {
    return JSON.parse(row.schedules) as Schedule[];
  }

  list(projectId: string) {
    return functionStore.list(this.db, projectId);
  }

  /** A function of the project by id or slug; anything else is a 404. */
  async get(projectId: string, idOrSlug: string): Promise<FunctionRow> {
    const row = isUuid(idOrSlug)
      ? await functionStore.byId(this.db, idOrSlug.toLowerCase())
      : await functionStore.bySlug(this.db, projectId, idOrSlug);
    if (!row || row.project_id !== projectId) throw new AppError("FUNCTION_NOT_FOUND");
    return row;
  }

  private async checkTool(
    projectId: string,
    tool: FunctionCreate["tool"],
    exceptId: string | null,
  ) {
    if (tool && (await functionStore.toolNameTaken(this.db, projectId, tool.name, exceptId))) {
      throw new AppError(
        "CONFLICT",
        `A function of this project already offers the tool "${tool.name}"`,
        [{ field: "tool.name", message: "already taken" }],
      );
    }
  }

  async create(projectId: string, input: FunctionCreate): Promise<FunctionRow> {
    const slug = input.slug ?? slugify(input.name);
    const max = this.options.maxFunctionsPerProject;
    if ((await functionStore.count(this.db, projectId)) >= max)
      throw new AppError(
        "CONFLICT",
        `This project already has ${max} functions, the most it may have; delete one first`,
      );
    await this.checkTool(projectId, input.tool, null);
    const at = now();
    const row = {
      id: crypto.randomUUID(),
      project_id: projectId,
      name: input.name,
      slug,
      description: input.description ?? null,
      code: input.code,
      status: "draft" as const,
      version: 0,
      last_deployed_at: null,
      deploy_error: null,
      function_type: "cloudflare_worker",
      runtime_config: JSON.stringify({ ...runtimeDefaults, ...input.runtime_config }),
      public_endpoint: input.public_endpoint ? 1 : 0,
      invoke_response_mode: input.invoke_response_mode ?? "passthrough",
      tool: input.tool ? JSON.stringify(input.tool) : null,
      live_deployment_id: null,
      live_version: null,
      schedules: JSON.stringify((input.schedules ?? []).map(normalize)),
      language: input.language ?? "javascript",
      created_at: at,
      updated_at: at,
    };
    try {
      await functionStore.insert(this.db, row);
    } catch (err) {
      if (isUniqueViolation(err)) {
        throw new AppError(
          "CONFLICT",
          `A function with the slug "${slug}" already exists in this project`,
          [{ field: "slug", message: "already taken" }],
        );
      }
      throw err;
    }
    return (await functionStore.byId(this.db, row.id))!;
  }

  /** Saves changes; code and runtime_config wait for the next deploy. */
  async update(projectId: string, idOrSlug: string, input: FunctionUpdate): Promise<FunctionRow> {
    const row = await this.get(projectId, idOrSlug);
    if (input.tool !== undefined) await this.checkTool(projectId, input.tool, row.id);
    const patch: Partial<FunctionRow> = { updated_at: now() };
    if (input.name !== undefined) patch.name = input.name;
    if (input.slug !== undefined) patch.slug = input.slug;
    if (input.description !== undefined) patch.description = input.description;
    if (input.code !== undefined) patch.code = input.code;
    if (input.language !== undefined) patch.language = input.language;
    if (input.runtime_config !== undefined) {
      patch.runtime_config = JSON.stringify({
        ...JSON.parse(row.runtime_config),
        ...input.runtime_config,
      });
    }
    if (input.public_endpoint !== undefined) patch.public_endpoint = input.public_endpoint ? 1 : 0;
    if (input.invoke_response_mode !== undefined)
      patch.invoke_response_mode = input.invoke_response_mode;
    if (input.tool !== undefined) patch.tool = input.tool ? JSON.stringify(input.tool) : null;
    if (input.schedules !== undefined)
      patch.schedules = JSON.stringify(input.schedules.map(normalize));
    try {
      await functionStore.update(this.db, row.id, patch);
    } catch (err) {
      if (isUniqueViolation(err)) {
        throw new AppError(
          "CONFLICT",
          `A function with the slug "${input.slug}" already exists in this project`,
          [{ field: "slug", message: "already taken" }],
        );
      }
      throw err;
    }
    await this.invalidate(row.id);
    return (await functionStore.byId(this.db, row.id))!;
  }

  async remove(projectId: string, idOrSlug: string): Promise<FunctionRow> {
    const row = await this.get(projectId, idOrSlug);
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom("secrets").where("function_id", "=", row.id).execute();
      await tx.deleteFrom("deployments").where("function_id", "=", row.id).execute();
      await tx.deleteFrom("schedule_ticks").where("owner", "=", `function:${row.id}`).execute();
      await functionStore.delete(tx, row.id);
    });
    await this.invalidate(row.id);
    return row;
  }

  /** Starts a deploy of the current draft; its outcome lands on the function's status. */
  async deploy(projectId: string, idOrSlug: string, message?: string): Promise<FunctionRow> {
    const row = await this.get(projectId, idOrSlug);
    const inProgress = () =>
      new AppError("CONFLICT", "A deploy of this function is already in progress");
    if (row.status === "deploying") throw inProgress();
    const deploymentId = crypto.randomUUID();
    const flags = (JSON.parse(row.runtime_config) as RuntimeSettings).compatibility_flags ?? [];
    const { check, module, map } = buildModule(row.code, row.language, flags);
    // One deploy at a time per function, across hosts: the start is a conditional update.
    const started = await this.db.transaction().execute(async (tx) => {
      const changed = await tx
        .updateTable("functions")
        .set({ status: "deploying", updated_at: now() })
        .where("id", "=", row.id)
        .where("status", "!=", "deploying")
        .executeTakeFirst();
      if (Number(changed.numUpdatedRows) !== 1) return false;
      await functionStore.insertDeployment(tx, {
        id: deploymentId,
        function_id: row.id,
        version: null,
        code: row.code,
        module,
        source_map: map,
        language: row.language,
        runtime_config: row.runtime_config,
        invoke_response_mode: row.invoke_response_mode,
        message: message ?? null,
        created_at: now(),
      });
      return true;
    });
    if (!started) throw inProgress();
    await this.invalidate(row.id);
    this.deployingHere.add(row.id);
    const task = this.finishDeploy(row, deploymentId, check, map)
      .catch((err) =>
        this.options.log(`deploy of ${row.id} failed unexpectedly: ${(err as Error).stack}`),
      )
      .finally(() => this.deployingHere.delete(row.id));
    this.deploys.add(task);
    void task.finally(() => this.deploys.delete(task));
    return (await functionStore.byId(this.db, row.id))!;
  }

  private async finishDeploy(
    row: FunctionRow,
    deploymentId: string,
    check: CodeCheck,
    map: string | null,
  ) {
    let error: string | null = null;
    if (!check.ok && check.parsed) {
      error = check.error;
    } else {
      const current = (await functionStore.byId(this.db, row.id)) ?? row;
      const result = await this.pool.invoke({
        workerId: await this.workerIdFor(current, deploymentId),
        deploymentId,
        projectId: row.project_id,
        url: "http://probe.invalid/",
        method: "GET",
        headers: {},
        body: null,
        timeoutMs: this.options.deployProbeTimeoutMs,
        memoryMb:
          (JSON.parse(current.runtime_config) as RuntimeSettings).memory ?? runtimeDefaults.memory,
        cpuMs:
          (JSON.parse(current.runtime_config) as RuntimeSettings).cpu_ms ?? runtimeDefaults.cpu_ms,
        functionId: row.id,
        probe: true,
      });
      if (result.kind === "cpu")
        error = `The code's start-up exceeded its CPU budget of ${
          (JSON.parse(current.runtime_config) as RuntimeSettings).cpu_ms ?? runtimeDefaults.cpu_ms
        } ms: a top-level loop or computation never yields; move work into the handler`;
      else if (result.kind === "load")
        error = describeLoadError(
          map ? toSourcePositions(result.error ?? "", sourceMap(map)) : (result.error ?? ""),
          check.ok ? undefined : check.loc,
        );
      else if (result.kind !== "ok")
        error = `The runtime could not check the code: ${result.error}`;
      else if (!check.ok) error = `The code could not be checked: ${check.error}`;
      else error = entrypointProblem(result);
    }
    const fresh = await functionStore.byId(this.db, row.id);
    if (!fresh) return; // deleted meanwhile
    if (error) {
      // A failed deploy keeps no version.
      await this.db.transaction().execute(async (tx) => {
        await tx.deleteFrom("deployments").where("id", "=", deploymentId).execute();
        await functionStore.update(tx, row.id, {
          status: fresh.live_deployment_id ? "deployed" : "error",
          deploy_error: error,
          updated_at: now(),
        });
      });
    } else {
      await functionStore.commitVersion(
        this.db,
        row.id,
        deploymentId,
        this.options.versionsKept ?? 100,
      );
    }
    await this.invalidate(row.id);
  }

  /**
   * Makes version `version` live at once: no rebuild, no check (it passed its own when it
   * was deployed); the next call on every host runs it. The draft stays as it is; the
   * response mode goes back to the version's, since its code was written for that.
   */
  async rollback(projectId: string, idOrSlug: string, version: number): Promise<FunctionRow> {
    const row = await this.get(projectId, idOrSlug);
    if (!row.live_deployment_id)
      throw new AppError(
        "NOT_ALLOWED",
        `The function has never been deployed (status: ${row.status}), so it has no version to roll back to`,
      );
    const target = await this.db
      .selectFrom("deployments")
      .select(["id", "invoke_response_mode"])
      .where("function_id", "=", row.id)
      .where("version", "=", version)
      .executeTakeFirst();
    if (!target)
      throw new AppError(
        "NOT_FOUND",
        `The function has no version ${version} (its versions are 1 to ${row.version}, of which the newest ${this.options.versionsKept ?? 100} are kept)`,
      );
    if (target.id === row.live_deployment_id) return row;
    await this.db
      .updateTable("functions")
      .set({
        live_deployment_id: target.id,
        live_version: version,
        invoke_response_mode: target.invoke_response_mode ?? row.invoke_response_mode,
        updated_at: now(),
      })
      .where("id", "=", row.id)
      .execute();
    await this.invalidate(row.id);
    return (await functionStore.byId(this.db, row.id))!;
  }

  /** Versions newest first, without code; `after` pages to older ones. */
  async versions(projectId: string, idOrSlug: string, limit: number, after?: number) {
    const row = await this.get(projectId, idOrSlug);
    let q = this.db
      .selectFrom("deployments")
      .selectAll()
      .where("function_id", "=", row.id)
      .where("version", "is not", null);
    if (after !== undefined) q = q.where("version", "<", after);
    const rows = await q
      .orderBy("version", "desc")
      .limit(limit + 1)
      .execute();
    const page = rows.slice(0, limit);
    return {
      data: page.map((d) => this.renderVersion(row, d, false)),
      nextCursor: rows.length > limit ? page[page.length - 1].version : null,
    };
  }

  /** One version with its code; a 404 when there is no such version (any more). */
  async version(projectId: string, idOrSlug: string, version: number) {
    const row = await this.get(projectId, idOrSlug);
    const d = await this.db
      .selectFrom("deployments")
      .selectAll()
      .where("function_id", "=", row.id)
      .where("version", "=", version)
      .executeTakeFirst();
    if (!d) throw new AppError("NOT_FOUND", `The function has no version ${version}`);
    return this.renderVersion(row, d, true);
  }

  private renderVersion(fn: FunctionRow, d: DeploymentRow, withCode: boolean) {
    return {
      version: d.version,
      ...(withCode ? { code: d.code } : {}),
      language: d.language,
      runtime_config: JSON.parse(d.runtime_config),
      invoke_response_mode: d.invoke_response_mode ?? fn.invoke_response_mode,
      message: d.message,
      created_at: d.created_at,
      live: d.id === fn.live_deployment_id,
    };
  }

  /** Deploys cut short by a crash: the previous version stays live. */
  /**
   * Deploys cut short by a crash: the previous version stays live. In a cluster another host
   * may be checking a deploy right now, so only deploys in progress for longer than any
   * check takes (`staleMs`) count as interrupted; every host looks now and then.
   */
  async recoverInterruptedDeploys(staleMs = 0): Promise<void> {
    const before = new Date(this.clock.now() - staleMs).toISOString();
    for (const row of await functionStore.deploying(this.db)) {
      if (staleMs > 0 && row.updated_at > before) continue;
      if (this.deployingHere.has(row.id)) continue;
      const changed = await this.db
        .updateTable("functions")
        .set({
          status: row.live_deployment_id ? "deployed" : "error",
          deploy_error: "The deploy was interrupted by a restart of the server; deploy again",
          updated_at: now(),
        })
        .where("id", "=", row.id)
        .where("status", "=", "deploying")
        .where("updated_at", "=", row.updated_at)
        .executeTakeFirst();
      if (Number(changed.numUpdatedRows) !== 1) continue;
      // The interrupted deploy's deployment never became a version.
      await this.db
        .deleteFrom("deployments")
        .where("function_id", "=", row.id)
        .where("version", "is", null)
        .execute();
      await this.invalidate(row.id);
    }
  }

  /** Functions whose deploy this host is checking now. */
  private deployingHere = new Set<string>();

  /** Waits for deploys in progress (used on shutdown). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.deploys]);
  }

  private async workerIdFor(row: FunctionRow, deploymentId: string): Promise<string> {
    const project = await this.db
      .selectFrom("projects")
      .select("secrets_version")
      .where("id", "=", row.project_id)
      .executeTakeFirst();
    return `${deploymentId}:${project?.secrets_version ?? 0}:${row.secrets_version}`;
  }

  /** Builds the cached view of `row`; cached only if nothing was invalidated since `generation`. */
  private async loadLive(row: FunctionRow, generation: number): Promise<LiveFunction> {
    let timeoutMs = runtimeDefaults.timeout * 1000;
    let memoryMb = runtimeDefaults.memory;
    let cpuMs = runtimeDefaults.cpu_ms;
    let map: TraceMap | null = null;
    if (row.live_deployment_id) {
      const deployment = await functionStore.deployment(this.db, row.live_deployment_id);
      if (deployment?.source_map) map = sourceMap(deployment.source_map);
      const settings = JSON.parse(deployment?.runtime_config ?? "{}") as RuntimeSettings;
      timeoutMs = (settings.timeout ?? runtimeDefaults.timeout) * 1000;
      memoryMb = settings.memory ?? runtimeDefaults.memory;
      cpuMs = settings.cpu_ms ?? runtimeDefaults.cpu_ms;
    }
    const live: LiveFunction = {
      id: row.id,
      projectId: row.project_id,
      slug: row.slug,
      status: row.status,
      publicEndpoint: row.public_endpoint === 1,
      mode: row.invoke_response_mode,
      deploymentId: row.live_deployment_id,
      version: row.live_version,
      workerId: row.live_deployment_id ? await this.workerIdFor(row, row.live_deployment_id) : null,
      timeoutMs,
      memoryMb,
      cpuMs,
      sourceMap: map,
    };
    if (generation === this.generation) {
      this.live.set(row.id, live);
      this.slugs.set(`${row.project_id}/${row.slug}`, row.id);
    }
    return live;
  }

  /**
   * The function an invocation addresses: by id or slug within the caller's project, or by id
   * alone when it is public. Null when the caller may not see it.
   */
  async resolveForInvoke(idOrSlug: string, projectId: string | null): Promise<LiveFunction | null> {
    let live: LiveFunction | undefined;
    // Taken before any store read, so an invalidation after the read discards the fill.
    const generation = this.generation;
    if (isUuid(idOrSlug)) {
      const id = idOrSlug.toLowerCase();
      live = this.live.get(id);
      if (!live) {
        const row = await functionStore.byId(this.db, id);
        if (!row) return null;
        live = await this.loadLive(row, generation);
      }
    } else {
      if (!projectId) return null;
      const id = this.slugs.get(`${projectId}/${idOrSlug}`);
      live = id ? this.live.get(id) : undefined;
      if (!live) {
        const row = await functionStore.bySlug(this.db, projectId, idOrSlug);
        if (!row) return null;
        live = await this.loadLive(row, generation);
      }
    }
    if (live.projectId === projectId || live.publicEndpoint) return live;
    return null;
  }

  /**
   * Counts a strike against functions that hung or crashed a runtime process; past
   * `strikesToHold` strikes within the window the function is held back (503) for `holdMs`.
   * Strikes and holds are kept in the store, for every host and past restarts.
   */
  strike(functionIds: string[], reason: string): Promise<void> {
    return Promise.all(functionIds.map((id) => this.strikeOne(id, reason))).then(
      () => {},
      (err) => this.options.log(`recording a strike failed: ${(err as Error).message}`),
    );
  }

  private async strikeOne(id: string, reason: string): Promise<void> {
    const at = this.clock.now();
    const since = at - this.options.strikeWindowMs;
    const held = await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom("function_strikes").where("at", "<=", since).execute();
      await tx.insertInto("function_strikes").values({ function_id: id, at }).execute();
      const { n } = await tx
        .selectFrom("function_strikes")
        .select((eb) => eb.fn.countAll().as("n"))
        .where("function_id", "=", id)
        .executeTakeFirstOrThrow();
      if (Number(n) < this.options.strikesToHold) return null;
      const until = at + this.options.holdMs;
      await tx
        .insertInto("function_holds")
        .values({ function_id: id, held_until: until, reason })
        .onConflict((oc) => oc.column("function_id").doUpdateSet({ held_until: until, reason }))
        .execute();
      await tx.deleteFrom("function_strikes").where("function_id", "=", id).execute();
      return { until, strikes: Number(n) };
    });
    if (!held) return;
    this.holdGeneration++;
    this.holds.set(id, held.until);
    this.options.log(
      `function ${id} ${reason} its runtime process ${held.strikes} times; held back for ${this.options.holdMs / 1000} s`,
    );
    await this.options.changes?.publish([{ topic: "hold", key: id }]);
  }

  /** When a held-back function runs again (ISO time), or null when it is not held. */
  heldUntil(functionId: string): string | null {
    const until = this.holds.get(functionId);
    if (until === undefined) return null;
    if (until <= this.clock.now()) {
      this.holds.delete(functionId);
      return null;
    }
    return new Date(until).toISOString();
  }

  /** Forgets cached lookups of one function (after any change to it), on every host. */
  invalidate(functionId: string): Promise<void> {
    this.forget(functionId);
    return this.publish({ topic: "function", key: functionId });
  }

  /** Forgets cached lookups of every function of a project (a project secret changed). */
  invalidateProject(projectId: string): Promise<void> {
    this.forgetProject(projectId);
    return this.publish({ topic: "project", key: projectId });
  }

  private publish(change: { topic: "function" | "project"; key: string }): Promise<void> {
    if (!this.options.changes) return Promise.resolve();
    return this.options.changes
      .publish([change])
      .catch((err) =>
        this.options.log(
          `telling the other hosts of a change to ${change.topic} ${change.key} failed: ${(err as Error).message}`,
        ),
      );
  }

  /**
   * Calls `listener` after every change to a function (its id), here or on another host, and
   * with null when every cached function was forgotten. Returns an unsubscribe.
   */
  onChange(listener: (functionId: string | null) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private changeListeners = new Set<(functionId: string | null) => void>();

  private notify(functionId: string | null): void {
    for (const listener of this.changeListeners) listener(functionId);
  }

  private forget(functionId: string): void {
    this.notify(functionId);
    this.generation++;
    const live = this.live.get(functionId);
    if (live) this.slugs.delete(`${live.projectId}/${live.slug}`);
    this.live.delete(functionId);
  }

  private forgetProject(projectId: string): void {
    // Also when none of them is cached: a fill of one may be reading the old secrets version.
    this.generation++;
    for (const live of [...this.live.values()])
      if (live.projectId === projectId) this.forget(live.id);
  }

  private forgetAll(): void {
    this.notify(null);
    this.generation++;
    this.live.clear();
    this.slugs.clear();
  }

  /** The code and settings of the live version (nulls before the first successful deploy). */
  async deployedCode(projectId: string, idOrSlug: string) {
    const row = await this.get(projectId, idOrSlug);
    const deployment = row.live_deployment_id
      ? await functionStore.deployment(this.db, row.live_deployment_id)
      : undefined;
    return {
      function_id: row.id,
      version: deployment?.version ?? null,
      code: deployment?.code ?? null,
      runtime_config: deployment ? JSON.parse(deployment.runtime_config) : null,
      deployed_at: deployment ? row.last_deployed_at : null,
    };
  }

  /** The module and settings a workerd process loads for a deployment. */
  async deploymentCode(deploymentId: string) {
    const deployment = await functionStore.deployment(this.db, deploymentId);
    if (!deployment) return null;
    const row = await functionStore.byId(this.db, deployment.function_id);
    if (!row) return null;
    const settings = JSON.parse(deployment.runtime_config) as RuntimeSettings;
    return {
      function: row,
      moduleName,
      code: deployment.module,
      compatibilityFlags: settings.compatibility_flags ?? [],
      /** Bounds each env.DB statement, like the invocation itself. */
      timeoutMs: (settings.timeout ?? runtimeDefaults.timeout) * 1000,
    };
  }
}

/**
 * What is wrong with the entrypoints a deploy's probe found, or null. For the hosted
 * original's shape they are the `typeof` of `handler` and `scheduled`; for module syntax, of
 * the default export's `fetch` and `scheduled`. At least one must be a function, and one that
 * is defined must be a function.
 */
function entrypointProblem(probe: InvokeResult): string | null {
  const { handlerType: handler, scheduledType: scheduled } = probe;
  if (probe.shape === "module") {
    if (probe.exportedType !== "object" && probe.exportedType !== "function")
      return `\`export default\` exports ${probe.exportedType === "undefined" ? "undefined" : `a ${probe.exportedType}`}, not an object: ${acceptedShapes}`;
    if (handler !== "function" && scheduled !== "function")
      return `The object exported as default has neither a \`fetch\` nor a \`scheduled\` method: ${acceptedShapes}`;
    return null;
  }
  if (handler !== undefined && handler !== "undefined" && handler !== "function")
    return `\`handler\` is not a function: ${acceptedShapes}`;
  if (scheduled !== undefined && scheduled !== "undefined" && scheduled !== "function")
    return `\`scheduled\` is not a function: ${acceptedShapes}`;
  if (handler !== "function" && scheduled !== "function")
    return `Neither \`handler\` nor \`scheduled\` is a function: ${acceptedShapes}`;
  return null;
}
