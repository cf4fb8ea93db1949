import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { renderConfig, type WorkerdConfig } from "./config.js";
import { workerSourceDir } from "./files.js";
import { WorkerdProcess, type InvokeRequest, type InvokeResult } from "./process.js";

export interface PoolOptions {
  dataDir: string;
  processes: number;
  hostInternalPort: number;
  allowPrivateNetwork: boolean;
  isolateHeapMb: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  stuckKillMs: number;
  maxIsolatesPerProcess: number;
  maxProcessRssBytes: number;
  log: (line: string) => void;
}

/** Counters the pool keeps for /healthz and /metrics. */
export interface PoolStats {
  restarts: number;
  recycles: number;
}

const compatibilityDate = "2025-11-17";

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A fixed number of workerd slots. Each project has a home slot (cache locality); a slot whose
 * process is late on its heartbeat gets no new work, a stuck one is killed, a dead one is
 * replaced, and one past its memory or isolate bound is drained and replaced.
 */
export class RuntimePool {
  private slots: (WorkerdProcess | null)[] = [];
  private draining = new Set<WorkerdProcess>();
  private timer?: NodeJS.Timeout;
  private stopping = false;
  private configPath = "";
  /** Authenticates host → supervisor and supervisor → host traffic. */
  readonly token = crypto.randomBytes(32).toString("hex");
  readonly stats: PoolStats = { restarts: 0, recycles: 0 };

  constructor(private options: PoolOptions) {}

  /** Writes the workerd config and starts every process. */
  async start(): Promise<void> {
    const dir = path.join(this.options.dataDir, "runtime");
    fs.mkdirSync(dir, { recursive: true });
    const src = workerSourceDir();
    const files: [string, string][] = [
      ["supervisor.js", "supervisor.js"],
      ["loaded/main.js", "loaded-main.txt"],
      ["loaded/setup.js", "loaded-setup.txt"],
      ["loaded/env.js", "loaded-env.txt"],
      ["loaded/kv.js", "loaded-kv.txt"],
      ["loaded/d1.js", "loaded-d1.txt"],
    ];
    for (const [from, to] of files) {
      if (fs.existsSync(path.join(src, from)))
        fs.copyFileSync(path.join(src, from), path.join(dir, to));
    }
    const config: WorkerdConfig = {
      services: [
        {
          name: "supervisor",
          worker: {
            modules: [
              { name: "supervisor.js", esModule: { embed: "supervisor.js" } },
              ...files
                .slice(1)
                .filter(([from]) => fs.existsSync(path.join(src, from)))
                .map(([, to]) => ({ name: to, text: { embed: to } })),
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
      v8Flags: [`--max-old-space-size=${this.options.isolateHeapMb}`],
    };
    this.configPath = path.join(dir, "workerd.capnp");
    fs.writeFileSync(this.configPath, renderConfig(config));
    this.slots = await Promise.all(
      Array.from({ length: this.options.processes }, (_, i) => this.spawn(i)),
    );
    this.timer = setInterval(() => void this.watch(), this.options.heartbeatIntervalMs);
    this.timer.unref();
  }

  private spawn(index: number): Promise<WorkerdProcess> {
    return WorkerdProcess.start({
      index,
      token: this.token,
      configPath: this.configPath,
      log: this.options.log,
      onExit: (proc, code, signal) => this.onExit(proc, code, signal),
    });
  }

  private onExit(proc: WorkerdProcess, code: number | null, signal: string | null): void {
    this.draining.delete(proc);
    if (this.stopping || this.slots[proc.index] !== proc) return;
    this.options.log(
      `workerd process ${proc.index} exited (code ${code}, signal ${signal}); restarting`,
    );
    this.stats.restarts++;
    this.slots[proc.index] = null;
    void this.replace(proc.index);
  }

  private async replace(index: number): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        const fresh = await this.spawn(index);
        if (this.stopping) {
          await fresh.stop();
          return;
        }
        this.slots[index] = fresh;
        return;
      } catch (err) {
        this.options.log(`workerd process ${index} failed to start: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** attempt)));
      }
    }
  }

  /** Heartbeats every process; acts on late, stuck, oversized and drained ones. */
  private async watch(): Promise<void> {
    const { heartbeatTimeoutMs, stuckKillMs } = this.options;
    await Promise.all(
      this.slots.map(async (proc) => {
        if (!proc || proc.state === "dead" || proc.state === "starting") return;
        const ok = await proc.heartbeat(heartbeatTimeoutMs);
        if (ok) {
          if (proc.state === "late") proc.state = "ready";
          if (
            proc.state === "ready" &&
            (proc.loadedIsolates > this.options.maxIsolatesPerProcess ||
              proc.residentBytes() > this.options.maxProcessRssBytes)
          ) {
            await this.recycle(proc);
          }
          return;
        }
        const lateMs = Date.now() - proc.lastBeatAt;
        if (proc.state === "ready") proc.state = "late";
        // Kill once an invocation inside has run past its own timeout (the likely culprit),
        // or when the process has been unresponsive for far longer than any timeout allows.
        if ((lateMs >= stuckKillMs && proc.timeoutsSinceBeat > 0) || lateMs > 330_000) {
          this.options.log(
            `workerd process ${proc.index} is stuck (${lateMs} ms late); killing it`,
          );
          proc.kill();
        }
      }),
    );
    for (const proc of this.draining) if (proc.inFlight === 0) void proc.stop();
  }

  /** Replaces a process: new work goes to the new one, the old one finishes and stops. */
  private async recycle(proc: WorkerdProcess): Promise<void> {
    proc.state = "draining";
    this.stats.recycles++;
    this.options.log(
      `workerd process ${proc.index} reached its memory or isolate bound; replacing it`,
    );
    this.draining.add(proc);
    try {
      const fresh = await this.spawn(proc.index);
      if (this.stopping) return void (await fresh.stop());
      this.slots[proc.index] = fresh;
    } catch (err) {
      this.slots[proc.index] = null;
      void this.replace(proc.index);
      this.options.log(
        `replacement of workerd process ${proc.index} failed: ${(err as Error).message}`,
      );
    }
  }

  /** The process for a project: its home slot if that one is ready, else the next ready one. */
  pick(projectId: string): WorkerdProcess | null {
    const n = this.slots.length;
    const home = fnv1a(projectId) % n;
    for (let i = 0; i < n; i++) {
      const proc = this.slots[(home + i) % n];
      if (proc && proc.state === "ready") return proc;
    }
    return null;
  }

  async invoke(request: InvokeRequest): Promise<InvokeResult> {
    const proc = this.pick(request.projectId);
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

  healthy(): boolean {
    return this.slots.some((p) => p?.state === "ready");
  }

  /** A snapshot of every slot, for /healthz and /metrics. */
  describe() {
    return this.slots.map((p, index) => ({
      index,
      state: p?.state ?? "restarting",
      pid: p?.pid ?? null,
      in_flight: p?.inFlight ?? 0,
      loaded_isolates: p?.loadedIsolates ?? 0,
      rss_bytes: p ? p.residentBytes() : 0,
    }));
  }

  /** Stops every process. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await Promise.all([...this.slots, ...this.draining].map((p) => p?.stop()));
  }
}

export { compatibilityDate };
