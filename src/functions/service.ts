import crypto from "node:crypto";
import { AppError } from "../http/errors.js";
import { isUuid } from "../http/validate.js";
import { isUniqueViolation, now, type Store } from "../store/db.js";
import type { RuntimePool } from "../runtime/pool.js";
import { describeLoadError, moduleName, prepareModule } from "./code.js";
import {
  runtimeDefaults,
  slugify,
  type FunctionCreate,
  type FunctionUpdate,
  type RuntimeSettings,
} from "./schema.js";
import { functionStore, type FunctionRow } from "./store.js";

/** What the invoke path needs of a function, cached in memory. */
export interface LiveFunction {
  id: string;
  projectId: string;
  slug: string;
  status: FunctionRow["status"];
  publicEndpoint: boolean;
  mode: "passthrough" | "wrapped";
  deploymentId: string | null;
  /** The Worker Loader id: deployment plus secrets versions, so a secret change loads anew. */
  workerId: string | null;
  timeoutMs: number;
  memoryMb: number;
  /** CPU budget (runtime_config.cpu_ms). */
  cpuMs: number;
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
  /** Recent strikes (process hangs or crashes) per function, and holds in force. */
  private strikes = new Map<string, number[]>();
  private holds = new Map<string, number>();

  constructor(
    private db: Store,
    private pool: RuntimePool,
    private options: FunctionServiceOptions,
  ) {}

  render(row: FunctionRow, withCode = true) {
    return {
      id: row.id,
      name: row.name,
      slug: row.slug,
      description: row.description,
      ...(withCode ? { code: row.code } : {}),
      version: row.version,
      status: row.status,
      last_deployed_at: row.last_deployed_at,
      deploy_error: row.deploy_error,
      function_type: row.function_type,
      runtime_config: JSON.parse(row.runtime_config),
      endpoint_url: `${this.options.publicUrl}/platform/v1/functions/${row.id}/invoke`,
      public_endpoint: row.public_endpoint === 1,
      invoke_response_mode: row.invoke_response_mode,
      tool: row.tool ? JSON.parse(row.tool) : null,
      held_until: this.heldUntil(row.id),
      project_id: row.project_id,
      created_at: row.created_at,
      updated_at: row.updated_at,
    };
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
    this.invalidate(row.id);
    return (await functionStore.byId(this.db, row.id))!;
  }

  async remove(projectId: string, idOrSlug: string): Promise<FunctionRow> {
    const row = await this.get(projectId, idOrSlug);
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom("secrets").where("function_id", "=", row.id).execute();
      await functionStore.delete(tx, row.id);
    });
    this.invalidate(row.id);
    return row;
  }

  /** Starts a deploy of the current draft; its outcome lands on the function's status. */
  async deploy(projectId: string, idOrSlug: string): Promise<FunctionRow> {
    const row = await this.get(projectId, idOrSlug);
    if (row.status === "deploying") {
      throw new AppError("CONFLICT", "A deploy of this function is already in progress");
    }
    const deploymentId = crypto.randomUUID();
    const check = prepareModule(row.code);
    await this.db.transaction().execute(async (tx) => {
      await functionStore.insertDeployment(tx, {
        id: deploymentId,
        function_id: row.id,
        version: null,
        code: row.code,
        module: check.ok ? check.module : row.code,
        runtime_config: row.runtime_config,
        created_at: now(),
      });
      await functionStore.update(tx, row.id, { status: "deploying", updated_at: now() });
    });
    this.invalidate(row.id);
    const task = this.finishDeploy(row, deploymentId, check).catch((err) =>
      this.options.log(`deploy of ${row.id} failed unexpectedly: ${(err as Error).stack}`),
    );
    this.deploys.add(task);
    void task.finally(() => this.deploys.delete(task));
    return (await functionStore.byId(this.db, row.id))!;
  }

  private async finishDeploy(
    row: FunctionRow,
    deploymentId: string,
    check: ReturnType<typeof prepareModule>,
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
        error = describeLoadError(result.error ?? "", check.ok ? undefined : check.loc);
      else if (result.kind !== "ok")
        error = `The runtime could not check the code: ${result.error}`;
      else if (!check.ok) error = `The code could not be checked: ${check.error}`;
      else if (result.handlerType !== "function") {
        error =
          "`handler` is not a function: define a top-level `async function handler(request, env) { ... }` that returns a Response";
      }
    }
    const fresh = await functionStore.byId(this.db, row.id);
    if (!fresh) return; // deleted meanwhile
    if (error) {
      await functionStore.update(this.db, row.id, {
        status: fresh.live_deployment_id ? "deployed" : "error",
        deploy_error: error,
        updated_at: now(),
      });
    } else {
      const version = fresh.version + 1;
      const at = now();
      await this.db.transaction().execute(async (tx) => {
        await tx
          .updateTable("deployments")
          .set({ version })
          .where("id", "=", deploymentId)
          .execute();
        await functionStore.update(tx, row.id, {
          status: "deployed",
          version,
          live_deployment_id: deploymentId,
          last_deployed_at: at,
          deploy_error: null,
          updated_at: at,
        });
      });
    }
    this.invalidate(row.id);
  }

  /** Deploys cut short by a crash: the previous version stays live. */
  async recoverInterruptedDeploys(): Promise<void> {
    for (const row of await functionStore.deploying(this.db)) {
      await functionStore.update(this.db, row.id, {
        status: row.live_deployment_id ? "deployed" : "error",
        deploy_error: "The deploy was interrupted by a restart of the server; deploy again",
        updated_at: now(),
      });
    }
  }

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
    if (row.live_deployment_id) {
      const deployment = await functionStore.deployment(this.db, row.live_deployment_id);
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
      workerId: row.live_deployment_id ? await this.workerIdFor(row, row.live_deployment_id) : null,
      timeoutMs,
      memoryMb,
      cpuMs,
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
   */
  strike(functionIds: string[], reason: string): void {
    const at = Date.now();
    for (const id of functionIds) {
      const recent = (this.strikes.get(id) ?? []).filter(
        (t) => at - t < this.options.strikeWindowMs,
      );
      recent.push(at);
      this.strikes.set(id, recent);
      if (recent.length >= this.options.strikesToHold) {
        this.holds.set(id, at + this.options.holdMs);
        this.strikes.delete(id);
        this.options.log(
          `function ${id} ${reason} its runtime process ${recent.length} times; held back for ${this.options.holdMs / 1000} s`,
        );
      }
    }
  }

  /** When a held-back function runs again (ISO time), or null when it is not held. */
  heldUntil(functionId: string): string | null {
    const until = this.holds.get(functionId);
    if (until === undefined) return null;
    if (until <= Date.now()) {
      this.holds.delete(functionId);
      return null;
    }
    return new Date(until).toISOString();
  }

  /** Forgets cached lookups of one function (after any change to it). */
  invalidate(functionId: string): void {
    this.generation++;
    const live = this.live.get(functionId);
    if (live) this.slugs.delete(`${live.projectId}/${live.slug}`);
    this.live.delete(functionId);
  }

  /** Forgets cached lookups of every function of a project (after a project secret change). */
  invalidateProject(projectId: string): void {
    // Also when none of them is cached: a fill of one may be reading the old secrets version.
    this.generation++;
    for (const live of [...this.live.values()])
      if (live.projectId === projectId) this.invalidate(live.id);
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
