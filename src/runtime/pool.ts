import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { renderConfig, type WorkerdConfig } from "./config.js";
import { ipaddrSource, workerSourceDir } from "./files.js";
import { failed, type FrameLimits } from "./frame.js";
import { MemoryGuard } from "./memory.js";
import { WorkerdProcess, type InvokeRequest, type InvokeResult, type Running } from "./process.js";

export interface PoolOptions {
  dataDir: string;
  /**
   * The folder under `<dataDir>/runtime` for this host's workerd configs: each config names
   * its own host's internal port, so the hosts of `serve --workers` sharing a data dir keep
   * theirs apart. Empty for a single host.
   */
  runtimeName?: string;
  /** Processes per memory tier. */
  processes: number;
  hostInternalPort: number;
  allowPrivateNetwork: boolean;
  /** V8 heap limits (MB) of the tiers; a function runs in the smallest tier that fits its memory. */
  memoryTiersMb: number[];
  /**
   * CPU budgets (ms) of the tiers: a function runs in the smallest that fits its cpu_ms, so a
   * function with a large budget can only delay functions allowed as much.
   */
  cpuTiersMs: number[];
  /** How often each process is pinged (and its memory read): the resolution of both bounds. */
  heartbeatIntervalMs: number;
  /** Blocked this long, a process gets no new work until it answers again. */
  lateAfterMs: number;
  maxIsolatesPerProcess: number;
  maxProcessRssBytes: number;
  /** What the host enforces on every invocation's answer. */
  limits: FrameLimits;
  /** The environment workerd processes get (never the host's keys). */
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
  /** Told which functions hung or crashed a process, so repeat offenders can be held back. */
  onStrike: (functionIds: string[], reason: "hung" | "crashed") => void;
}

/** Counters the pool keeps for /healthz and /metrics. */
export interface PoolStats {
  restarts: number;
  recycles: number;
  kills: number;
}

export const compatibilityDate = "2025-11-17";

/**
 * Files copied next to the generated config (from the worker source folder): the supervisor
 * (first: workerd's main module), its address classifier and ipaddr.js, which that uses, and
 * the modules of loaded workers.
 */
const workerFiles: [from: string, to: string][] = [
  ["supervisor.js", "supervisor.js"],
  ["address.js", "address.js"],
  [path.relative(workerSourceDir(), ipaddrSource()), "ipaddr.js"],
  ["loaded/main.js", "loaded-main.txt"],
  ["loaded/setup.js", "loaded-setup.txt"],
  ["loaded/env.js", "loaded-env.txt"],
  ["loaded/kv.js", "loaded-kv.txt"],
  ["loaded/d1.js", "loaded-d1.txt"],
];

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Processes sharing one V8 heap limit and one CPU budget bound. */
class Tier {
  slots: (WorkerdProcess | null)[] = [];
  started?: Promise<void>;
  constructor(
    readonly heapMb: number,
    readonly cpuMs: number,
    readonly configPath: string,
  ) {}
  get name(): string {
    return `${this.heapMb}mb-${this.cpuMs}ms`;
  }
}

/** Host lag past which the watchdog trusts no heartbeat gap for a moment (it was the host). */
const hostLagMs = 250;
/** Slack on top of a CPU budget before the watchdog kills: a heartbeat's round trip. */
const cpuSlackMs = 250;
/** A process blocked this long with nothing inside is killed regardless. */
const idleStuckMs = 330_000;

/**
 * workerd processes in memory tiers (each with its own V8 heap limit), started on first use.
 * Each project has a home slot in a tier (cache locality); a process late on its heartbeat
 * gets no new work, a stuck one is killed, a dead one is replaced, and one past its memory
 * or isolate bound is drained and replaced.
 */
export class RuntimePool {
  private tiers = new Map<string, Tier>();
  private draining = new Set<WorkerdProcess>();
  private recycling = new Set<WorkerdProcess>();
  private timer?: NodeJS.Timeout;
  private lastTickAt = 0;
  private trustBeatsAfter = 0;
  private stopping = false;
  readonly memory = new MemoryGuard();
  /** Authenticates host → supervisor and supervisor → host traffic. */
  readonly token = crypto.randomBytes(32).toString("hex");
  readonly stats: PoolStats = { restarts: 0, recycles: 0, kills: 0 };

  constructor(private options: PoolOptions) {}

  /** Writes one workerd config per tier and starts the smallest tier. */
  async start(): Promise<void> {
    const dir = path.join(this.options.dataDir, "runtime", this.options.runtimeName ?? "");
    fs.mkdirSync(dir, { recursive: true });
    const src = workerSourceDir();
    const present = workerFiles.filter(([from]) => fs.existsSync(path.join(src, from)));
    for (const [from, to] of present) fs.copyFileSync(path.join(src, from), path.join(dir, to));
    for (const heapMb of [...this.options.memoryTiersMb].sort((a, b) => a - b)) {
      const configPath = path.join(dir, `workerd-${heapMb}mb.capnp`);
      fs.writeFileSync(configPath, renderConfig(this.config(heapMb, present)));
      for (const cpuMs of [...this.options.cpuTiersMs].sort((a, b) => a - b)) {
        const tier = new Tier(heapMb, cpuMs, configPath);
        this.tiers.set(tier.name, tier);
      }
    }
    await this.ensureTier(this.defaultTier());
    this.lastTickAt = Date.now();
    this.timer = setInterval(() => this.watch(), this.options.heartbeatIntervalMs);
    this.timer.unref();
  }

  private config(heapMb: number, files: [string, string][]): WorkerdConfig {
    return {
      services: [
        {
          name: "supervisor",
          worker: {
            modules: files.map(([, to]) =>
              to === "ipaddr.js"
                ? { name: to, commonJsModule: { embed: to } }
                : to.endsWith(".js")
                  ? { name: to, esModule: { embed: to } }
                  : { name: to, text: { embed: to } },
            ),
            compatibilityDate,
            compatibilityFlags: [],
            bindings: [
              { name: "LOADER", workerLoader: { id: "functions" } },
              { name: "HOST", service: "host" },
              { name: "INTERNET", service: "internet" },
              { name: "TOKEN", fromEnvironment: "WORKERBASE_RUNTIME_TOKEN" },
              { name: "ALLOW_PRIVATE", text: this.options.allowPrivateNetwork ? "1" : "0" },
            ],
            globalOutbound: "internet",
          },
        },
        { name: "host", external: { address: `127.0.0.1:${this.options.hostInternalPort}` } },
        {
          name: "internet",
          network: {
            allow: this.options.allowPrivateNetwork ? ["public", "private", "local"] : ["public"],
          },
        },
      ],
      sockets: [{ name: "http", address: "127.0.0.1:0", service: "supervisor" }],
      v8Flags: [`--max-old-space-size=${heapMb}`],
    };
  }

  private defaultTier(): Tier {
    return this.tierFor(0, 0);
  }

  /** The smallest tier whose heap limit fits `memoryMb` and whose CPU bound fits `cpuMs`. */
  private tierFor(memoryMb: number, cpuMs: number): Tier {
    const pick = (values: number[], want: number) => {
      const fitting = values.filter((v) => v >= want);
      return fitting.length ? Math.min(...fitting) : Math.max(...values);
    };
    const heapMb = pick(this.options.memoryTiersMb, memoryMb);
    const cpu = pick(this.options.cpuTiersMs, cpuMs);
    return this.tiers.get(`${heapMb}mb-${cpu}ms`)!;
  }

  /**
   * Starts a tier's processes. If any fails to start, the ones that did are stopped and the
   * tier is left unstarted, so the next invocation tries again (a failure is not forever).
   */
  private ensureTier(tier: Tier): Promise<void> {
    tier.started ??= (async () => {
      const started = await Promise.allSettled(
        Array.from({ length: this.options.processes }, (_, i) => this.spawn(tier, i)),
      );
      const failure = started.find((r) => r.status === "rejected");
      if (failure || this.stopping) {
        await Promise.all(
          started.map((r) => (r.status === "fulfilled" ? r.value.stop() : undefined)),
        );
        tier.started = undefined;
        throw failure ? (failure as PromiseRejectedResult).reason : new Error("stopping");
      }
      tier.slots = started.map((r) => (r as PromiseFulfilledResult<WorkerdProcess>).value);
    })();
    return tier.started;
  }

  private async spawn(tier: Tier, index: number): Promise<WorkerdProcess> {
    const proc = await WorkerdProcess.start({
      index,
      label: `${tier.heapMb}mb-${tier.cpuMs}ms/${index}`,
      token: this.token,
      configPath: tier.configPath,
      limits: this.options.limits,
      env: this.options.env,
      log: this.options.log,
      onExit: (p, code, signal) => this.onExit(tier, p, code, signal),
    });
    this.memory.place(proc.pid, `${tier.name}-${index}-${proc.pid}`, this.hardRssBound(tier));
    return proc;
  }

  private onExit(
    tier: Tier,
    proc: WorkerdProcess,
    code: number | null,
    signal: string | null,
  ): void {
    const wasDraining = this.draining.delete(proc);
    if (this.stopping || wasDraining || tier.slots[proc.index] !== proc) return;
    this.options.log(
      `workerd process ${proc.label} exited (code ${code}, signal ${signal}); restarting`,
    );
    this.stats.restarts++;
    if (proc.killReason === "cpu") {
      // Only the invocation that blocked the process: the others were its victims.
      if (proc.culprit) this.options.onStrike([proc.culprit.functionId], "hung");
    } else if (proc.killReason === "stuck") {
      this.options.onStrike([...proc.timedOutFunctions], "hung");
    } else if (proc.crashedFunctions.size === 1) {
      // With one function inside, the crash (usually V8's heap limit) is that function's doing.
      this.options.onStrike([...proc.crashedFunctions], "crashed");
    }
    tier.slots[proc.index] = null;
    void this.replace(tier, proc.index);
  }

  private async replace(tier: Tier, index: number): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        const fresh = await this.spawn(tier, index);
        if (this.stopping) return void (await fresh.stop());
        tier.slots[index] = fresh;
        return;
      } catch (err) {
        this.options.log(
          `workerd process ${tier.heapMb}mb/${index} failed to start: ${(err as Error).message}`,
        );
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** attempt)));
      }
    }
  }

  private *processes(): Generator<[Tier, WorkerdProcess]> {
    for (const tier of this.tiers.values()) {
      for (const proc of tier.slots) if (proc) yield [tier, proc];
    }
  }

  /**
   * The watchdog, every heartbeat interval: pings each process (one ping in flight at most),
   * measures how long its event loop has been blocked (time since its last answer), and acts
   * on late, CPU-bound, oversized and drained processes. Synchronous, so runs never overlap.
   */
  private watch(): void {
    const now = Date.now();
    const lag = now - this.lastTickAt - this.options.heartbeatIntervalMs;
    this.lastTickAt = now;
    // The host itself was busy: answers may be sitting unread. Judge no gap until they are.
    if (lag > hostLagMs) this.trustBeatsAfter = now + 2 * this.options.heartbeatIntervalMs;
    const judge = now >= this.trustBeatsAfter;
    for (const [tier, proc] of this.processes()) {
      if (proc.state === "dead" || proc.state === "starting") continue;
      if (!proc.beating) void this.beat(tier, proc);
      if (!judge || proc.killReason) continue;
      if (this.memory.enforcement === "rss-sampling") {
        const rss = proc.residentBytes();
        if (rss > this.hardRssBound(tier)) {
          this.options.log(
            `workerd process ${proc.label} went past its memory bound (${rss} bytes resident); stopping it`,
          );
          this.stats.kills++;
          proc.killFor("memory");
          continue;
        }
      }
      const blockedMs = now - proc.lastBeatAt;
      if (blockedMs >= this.options.lateAfterMs && proc.state === "ready") proc.state = "late";
      const budget = Math.max(0, ...[...proc.running].map((r) => r.cpuMs));
      if (proc.running.size > 0 ? blockedMs > budget + cpuSlackMs : blockedMs > idleStuckMs) {
        const culprit = proc.running.size > 0 ? this.culprit(proc) : null;
        this.options.log(
          `workerd process ${proc.label} was blocked for ${blockedMs} ms` +
            (culprit ? ` by function ${culprit.functionId}; ` : "; ") +
            "killing and replacing it",
        );
        this.stats.kills++;
        proc.killFor(culprit ? "cpu" : "stuck", culprit);
      }
    }
    for (const proc of this.draining) if (proc.inFlight === 0) void proc.stop();
  }

  private async beat(tier: Tier, proc: WorkerdProcess): Promise<void> {
    if (!(await proc.heartbeat(idleStuckMs))) return;
    if (proc.state === "late") proc.state = "ready";
    if (
      proc.state === "ready" &&
      (proc.loadedIsolates > this.options.maxIsolatesPerProcess ||
        proc.residentBytes() > this.rssBound(tier))
    ) {
      await this.recycle(tier, proc);
    }
  }

  /**
   * Which invocation blocked a process. The block began after the last answer, so the
   * culprit was sent before the next ping: of those, the one sent last (an earlier one was
   * still waiting on I/O when the process last answered). Measured from outside, this is a
   * judgement: documented in docs/decisions.md.
   */
  private culprit(proc: WorkerdProcess): Running {
    const onset = proc.lastBeatAt + this.options.heartbeatIntervalMs;
    const all = [...proc.running];
    const before = all.filter((r) => r.startedAt <= onset);
    const pool = before.length > 0 ? before : all;
    return pool.reduce((a, b) => (b.startedAt > a.startedAt ? b : a));
  }

  /** Past this a process is killed: the recycle bound and half again, or the cgroup's max. */
  private hardRssBound(tier: Tier): number {
    return Math.floor(this.rssBound(tier) * 1.5);
  }

  /** A process's resident-memory bound: at least two isolates at the tier's heap limit. */
  private rssBound(tier: Tier): number {
    return Math.max(this.options.maxProcessRssBytes, 2 * tier.heapMb * 1024 * 1024);
  }

  /**
   * Replaces a process: new work goes to the new one, the old one finishes and stops. The
   * replacement starts first and the old process takes work until it is ready, so recycling
   * never leaves a slot empty (nor the tier, when every process reaches its bound at once).
   */
  private async recycle(tier: Tier, proc: WorkerdProcess): Promise<void> {
    if (this.recycling.has(proc)) return;
    this.recycling.add(proc);
    this.stats.recycles++;
    this.options.log(
      `workerd process ${proc.label} reached its bound (${proc.loadedIsolates} isolates, ${proc.residentBytes()} bytes); replacing it`,
    );
    try {
      const fresh = await this.spawn(tier, proc.index);
      // Stopping, or the old process died meanwhile and its restart owns the slot.
      if (this.stopping || tier.slots[proc.index] !== proc) return void (await fresh.stop());
      tier.slots[proc.index] = fresh;
      proc.state = "draining";
      this.draining.add(proc);
    } catch (err) {
      // The old process keeps serving; a later heartbeat tries again.
      this.options.log(
        `replacement of workerd process ${proc.label} failed: ${(err as Error).message}`,
      );
    } finally {
      this.recycling.delete(proc);
    }
  }

  /** The process for a project: its home slot in the tier if ready, else the next ready one. */
  private pick(tier: Tier, projectId: string): WorkerdProcess | null {
    const n = tier.slots.length;
    if (n === 0) return null;
    const home = fnv1a(projectId) % n;
    for (let i = 0; i < n; i++) {
      const proc = tier.slots[(home + i) % n];
      if (proc && proc.state === "ready") return proc;
    }
    return null;
  }

  async invoke(request: InvokeRequest): Promise<InvokeResult> {
    const tier = this.tierFor(request.memoryMb, request.cpuMs);
    const unavailable = () =>
      failed(
        "crashed",
        "No runtime process is available right now; try again in a few seconds",
        503,
      );
    if (!tier.started) {
      try {
        await this.ensureTier(tier);
      } catch (err) {
        this.options.log(`runtime tier ${tier.name} failed to start: ${(err as Error).message}`);
        return unavailable();
      }
    }
    const proc = this.pick(tier, request.projectId);
    if (!proc) return unavailable();
    return proc.invoke(request);
  }

  /** True while at least one process of the default tier takes work. */
  healthy(): boolean {
    return this.defaultTier()?.slots.some((p) => p?.state === "ready") ?? false;
  }

  /** A snapshot of every process, for /healthz and /metrics. */
  describe() {
    const out = [];
    for (const tier of this.tiers.values()) {
      for (const [index, p] of tier.slots.entries()) {
        out.push({
          tier_mb: tier.heapMb,
          tier_cpu_ms: tier.cpuMs,
          index,
          state: p?.state ?? "restarting",
          pid: p?.pid ?? null,
          in_flight: p?.inFlight ?? 0,
          loaded_isolates: p?.loadedIsolates ?? 0,
          rss_bytes: p ? p.residentBytes() : 0,
        });
      }
    }
    return out;
  }

  /** Stops every process. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await Promise.all([...this.tiers.values()].map((t) => t.started?.catch(() => undefined)));
    await Promise.all(
      [...[...this.processes()].map(([, p]) => p), ...this.draining].map((p) => p.stop()),
    );
    this.memory.close();
  }
}
