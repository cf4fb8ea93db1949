import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { renderConfig, type WorkerdConfig } from "./config.js";
import { workerSourceDir } from "./files.js";
import { WorkerdProcess, type InvokeRequest, type InvokeResult } from "./process.js";

export interface PoolOptions {
  dataDir: string;
  /** Processes per memory tier. */
  processes: number;
  hostInternalPort: number;
  allowPrivateNetwork: boolean;
  /** V8 heap limits (MB) of the tiers; a function runs in the smallest tier that fits its memory. */
  memoryTiersMb: number[];
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  stuckKillMs: number;
  maxIsolatesPerProcess: number;
  maxProcessRssBytes: number;
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

/** Files copied next to the generated config: the supervisor and the modules of loaded workers. */
const workerFiles: [from: string, to: string][] = [
  ["supervisor.js", "supervisor.js"],
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

/** Processes sharing one V8 heap limit. */
class Tier {
  slots: (WorkerdProcess | null)[] = [];
  started?: Promise<void>;
  constructor(
    readonly heapMb: number,
    readonly configPath: string,
  ) {}
}

/**
 * workerd processes in memory tiers (each with its own V8 heap limit), started on first use.
 * Each project has a home slot in a tier (cache locality); a process late on its heartbeat
 * gets no new work, a stuck one is killed, a dead one is replaced, and one past its memory
 * or isolate bound is drained and replaced.
 */
export class RuntimePool {
  private tiers = new Map<number, Tier>();
  private draining = new Set<WorkerdProcess>();
  private recycling = new Set<WorkerdProcess>();
  private timer?: NodeJS.Timeout;
  private stopping = false;
  /** Authenticates host → supervisor and supervisor → host traffic. */
  readonly token = crypto.randomBytes(32).toString("hex");
  readonly stats: PoolStats = { restarts: 0, recycles: 0, kills: 0 };

  constructor(private options: PoolOptions) {}

  /** Writes one workerd config per tier and starts the smallest tier. */
  async start(): Promise<void> {
    const dir = path.join(this.options.dataDir, "runtime");
    fs.mkdirSync(dir, { recursive: true });
    const src = workerSourceDir();
    const present = workerFiles.filter(([from]) => fs.existsSync(path.join(src, from)));
    for (const [from, to] of present) fs.copyFileSync(path.join(src, from), path.join(dir, to));
    for (const heapMb of [...this.options.memoryTiersMb].sort((a, b) => a - b)) {
      const configPath = path.join(dir, `workerd-${heapMb}mb.capnp`);
      fs.writeFileSync(configPath, renderConfig(this.config(heapMb, present)));
      this.tiers.set(heapMb, new Tier(heapMb, configPath));
    }
    await this.ensureTier(this.defaultTier());
    this.timer = setInterval(() => void this.watch(), this.options.heartbeatIntervalMs);
    this.timer.unref();
  }

  private config(heapMb: number, files: [string, string][]): WorkerdConfig {
    return {
      services: [
        {
          name: "supervisor",
          worker: {
            modules: [
              { name: "supervisor.js", esModule: { embed: "supervisor.js" } },
              ...files.slice(1).map(([, to]) => ({ name: to, text: { embed: to } })),
            ],
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
    return this.tiers.get(Math.min(...this.tiers.keys()))!;
  }

  /** The smallest tier whose heap limit fits `memoryMb`. */
  private tierFor(memoryMb: number): Tier {
    const fitting = [...this.tiers.keys()].filter((mb) => mb >= memoryMb);
    return this.tiers.get(fitting.length ? Math.min(...fitting) : Math.max(...this.tiers.keys()))!;
  }

  private ensureTier(tier: Tier): Promise<void> {
    tier.started ??= (async () => {
      tier.slots = await Promise.all(
        Array.from({ length: this.options.processes }, (_, i) => this.spawn(tier, i)),
      );
    })();
    return tier.started;
  }

  private spawn(tier: Tier, index: number): Promise<WorkerdProcess> {
    return WorkerdProcess.start({
      index,
      label: `${tier.heapMb}mb/${index}`,
      token: this.token,
      configPath: tier.configPath,
      log: this.options.log,
      onExit: (proc, code, signal) => this.onExit(tier, proc, code, signal),
    });
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
    if (proc.killedAsStuck) {
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

  /** Heartbeats every process; acts on late, stuck, oversized and drained ones. */
  private async watch(): Promise<void> {
    const { heartbeatTimeoutMs, stuckKillMs } = this.options;
    await Promise.all(
      [...this.processes()].map(async ([tier, proc]) => {
        if (proc.state === "dead" || proc.state === "starting" || proc.state === "draining") return;
        const ok = await proc.heartbeat(heartbeatTimeoutMs);
        if (ok) {
          if (proc.state === "late") proc.state = "ready";
          if (
            proc.state === "ready" &&
            (proc.loadedIsolates > this.options.maxIsolatesPerProcess ||
              proc.residentBytes() > this.rssBound(tier))
          ) {
            await this.recycle(tier, proc);
          }
          return;
        }
        const lateMs = Date.now() - proc.lastBeatAt;
        if (proc.state === "ready") proc.state = "late";
        // Kill once an invocation inside has run past its own timeout (the likely culprit), or
        // when the process has been unresponsive for longer than any timeout allows.
        if ((lateMs >= stuckKillMs && proc.timedOutFunctions.size > 0) || lateMs > 330_000) {
          this.options.log(
            `workerd process ${proc.label} is stuck (${lateMs} ms late); killing it`,
          );
          this.stats.kills++;
          proc.killedAsStuck = true;
          proc.kill();
        }
      }),
    );
    for (const proc of this.draining) if (proc.inFlight === 0) void proc.stop();
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
    const tier = this.tierFor(request.memoryMb);
    if (!tier.started) await this.ensureTier(tier);
    const proc = this.pick(tier, request.projectId);
    if (!proc) {
      return {
        kind: "crashed",
        status: 503,
        headers: [],
        body: Buffer.alloc(0),
        logs: [],
        error: "No runtime process is available right now; try again in a few seconds",
      };
    }
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
  }
}
