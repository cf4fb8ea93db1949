import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import readline from "node:readline";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { BodyTooLarge, Wire } from "./wire.js";
import { markSocketDir, socketDirPrefix } from "./sockets.js";
import {
  failed,
  maxFrameBytes,
  parseFrame,
  tooLarge,
  type FrameLimits,
  type InvokeResult,
} from "./frame.js";

/** What the host asks a workerd process to run. */
export interface InvokeRequest {
  workerId: string;
  deploymentId: string;
  projectId: string;
  url: string;
  method: string;
  headers: Record<string, string | string[]>;
  body: Buffer | null;
  timeoutMs: number;
  /** The function's memory setting (MB): picks the tier, whose V8 heap limit fits it. */
  memoryMb: number;
  /** Which function runs, so one that hangs or crashes its process can be held back. */
  functionId: string;
  /** The function's CPU budget: how long it may keep its process's event loop blocked. */
  cpuMs: number;
  probe?: boolean;
  /**
   * A schedule tick: the supervisor lets the `X-Workerbase-Cron` and
   * `X-Workerbase-Scheduled-Time` headers through (it drops them from every other call).
   */
  tick?: boolean;
  /** The invocation record's id: console lines written after the answer are added to it. */
  recordId?: string;
}

export type { InvokeResult, LogLine, ResultKind } from "./frame.js";

// The npm package `workerd` (CommonJS) exports the path of the binary it ships.
const workerdBinary: string = createRequire(import.meta.url)("workerd").default;

const invokeHeaderNames = {
  token: "x-workerbase-token",
  worker: "x-workerbase-worker",
  deployment: "x-workerbase-deployment",
  project: "x-workerbase-project",
  url: "x-workerbase-url",
  method: "x-workerbase-method",
  probe: "x-workerbase-probe",
  tick: "x-workerbase-tick",
  record: "x-workerbase-record",
};

const framing = new Set(["content-length", "transfer-encoding", "host", "connection"]);

/** Why the host killed a process: its invocations answer accordingly. */
export type KillReason = "cpu" | "memory" | "stuck";

/** An invocation inside a process, as the watchdog sees it. */
export interface Running {
  functionId: string;
  cpuMs: number;
  startedAt: number;
}

export interface ProcessOptions {
  index: number;
  label: string;
  configPath: string;
  /** Shared by the host and the supervisors, in both directions; never shown to functions. */
  token: string;
  limits: FrameLimits;
  /** Only these variables of the host's environment reach workerd. */
  env: NodeJS.ProcessEnv;
  onExit: (proc: WorkerdProcess, code: number | null, signal: string | null) => void;
  log: (line: string) => void;
}

/** One `workerd serve` child: started with a parent-death signal, reached over loopback. */
export class WorkerdProcess {
  readonly index: number;
  readonly token: string;
  private child!: ChildProcess;
  private agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  /** Invocations travel over these connections; heartbeats over the agent. */
  private wire = new Wire(() =>
    this.socketPath ? net.connect(this.socketPath) : net.connect(this.port, "127.0.0.1"),
  );
  port = 0;
  /** The unix socket workerd listens on (loopback TCP when the path would be too long). */
  private socketPath: string | undefined;
  private socketDir: string | undefined;
  /** ready: takes work; late: heartbeat overdue, gets no new work; draining: being replaced. */
  state: "starting" | "ready" | "late" | "draining" | "dead" = "starting";
  /** Invocations inside this process now. */
  readonly running = new Set<Running>();
  lastBeatAt = Date.now();
  /** A heartbeat is on its way; the watchdog never sends a second one meanwhile. */
  beating = false;
  /** Functions whose invocation timed out here since the last good heartbeat. */
  timedOutFunctions = new Set<string>();
  /** Functions whose invocations were cut off by this process dying. */
  crashedFunctions = new Set<string>();
  /** Set when the host killed the process, before the kill. */
  killReason: KillReason | null = null;
  /** The invocation the watchdog blamed for a CPU kill. */
  culprit: Running | null = null;
  loadedIsolates = 0;
  startedAt = Date.now();

  /** Settles after the exit of the child has been handled (state dead, pool told). */
  private exited!: Promise<void>;

  private constructor(private options: ProcessOptions) {
    this.index = options.index;
    this.token = options.token;
    this.label = options.label;
  }

  readonly label: string;

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts workerd and resolves once it listens. */
  static async start(options: ProcessOptions): Promise<WorkerdProcess> {
    const proc = new WorkerdProcess(options);
    await proc.spawn();
    return proc;
  }

  private spawn(): Promise<void> {
    // A unix socket in a private (0700) directory: cheaper than loopback TCP on both sides, and
    // only this user can connect. Outside the data dir, which holds only regular files.
    this.socketDir = fs.mkdtempSync(path.join(os.tmpdir(), socketDirPrefix));
    markSocketDir(this.socketDir);
    const sock = path.join(this.socketDir, "workerd.sock");
    this.socketPath = Buffer.byteLength(sock) < 100 ? sock : undefined;
    // setpriv's parent-death signal makes the kernel kill workerd if the host dies, even by SIGKILL.
    const args = [
      "--pdeathsig",
      "KILL",
      "--",
      workerdBinary,
      "serve",
      this.options.configPath,
      "--experimental",
      "--socket-addr",
      this.socketPath ? `http=unix:${this.socketPath}` : "http=127.0.0.1:0",
      "--control-fd",
      "3",
    ];
    const usePdeath = fs.existsSync("/usr/bin/setpriv");
    this.child = spawn(
      usePdeath ? "/usr/bin/setpriv" : workerdBinary,
      usePdeath ? args : args.slice(3),
      {
        stdio: ["ignore", "pipe", "pipe", "pipe"],
        // A process group of its own: a signal to the host's group (Ctrl-C, systemd, docker
        // stop) reaches only the host, which drains and stops workerd itself; the
        // parent-death signal still takes workerd down if the host dies.
        detached: true,
        env: { ...this.options.env, WORKERBASE_RUNTIME_TOKEN: this.token },
      },
    );
    const prefix = `[workerd ${this.label}]`;
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      readline
        .createInterface({ input: stream })
        .on("line", (line) => this.options.log(`${prefix} ${line}`));
    }
    return new Promise((resolve, reject) => {
      const control = readline.createInterface({
        input: this.child.stdio[3] as NodeJS.ReadableStream,
      });
      const timer = setTimeout(() => {
        reject(new Error("workerd did not start within 20 s"));
        this.kill();
      }, 20_000);
      control.on("line", (line) => {
        try {
          const event = JSON.parse(line);
          if (event.event === "listen" && event.socket === "http") {
            this.port = event.port;
            this.state = "ready";
            this.lastBeatAt = Date.now();
            clearTimeout(timer);
            resolve();
          }
        } catch {
          // Not ours to interpret.
        }
      });
      this.child.on("exit", (code, signal) => {
        clearTimeout(timer);
        const wasStarting = this.state === "starting";
        this.state = "dead";
        this.wire.destroy(new Error("workerd exited"));
        this.agent.destroy();
        if (this.socketDir) fs.rmSync(this.socketDir, { recursive: true, force: true });
        if (wasStarting)
          reject(new Error(`workerd exited during start (code ${code}, signal ${signal})`));
        this.options.onExit(this, code, signal);
      });
      // After the handler above: by then the process is dead and the pool has been told.
      this.exited = new Promise((done) => this.child.once("exit", () => done()));
    });
  }

  private address(): http.RequestOptions {
    return this.socketPath
      ? { socketPath: this.socketPath }
      : { host: "127.0.0.1", port: this.port };
  }

  get inFlight(): number {
    return this.running.size;
  }

  /** Sends one invocation; never rejects: failures come back as a result kind. */
  invoke(request: InvokeRequest): Promise<InvokeResult> {
    return new Promise((resolve) => {
      const headers: Record<string, string | string[]> = {};
      for (const name in request.headers) {
        // The wire writes its own framing headers.
        if (!framing.has(name.toLowerCase())) headers[name] = request.headers[name];
      }
      headers[invokeHeaderNames.token] = this.token;
      headers[invokeHeaderNames.worker] = request.workerId;
      headers[invokeHeaderNames.deployment] = request.deploymentId;
      headers[invokeHeaderNames.project] = request.projectId;
      headers[invokeHeaderNames.url] = request.url;
      headers[invokeHeaderNames.method] = request.method;
      if (request.probe) headers[invokeHeaderNames.probe] = "1";
      if (request.tick) headers[invokeHeaderNames.tick] = "1";
      if (request.recordId) headers[invokeHeaderNames.record] = request.recordId;
      const fnId = request.functionId;
      const entry: Running = { functionId: fnId, cpuMs: request.cpuMs, startedAt: Date.now() };
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (result: InvokeResult) => {
        if (settled) return;
        settled = true;
        this.running.delete(entry);
        clearTimeout(timer);
        resolve(result);
      };
      this.running.add(entry);
      const limits = this.options.limits;
      const abort = this.wire.request(
        "POST",
        "/__wb/invoke",
        headers,
        request.body,
        (err, res) => {
          if (settled) return; // timed out and aborted
          if (err instanceof BodyTooLarge) return finish(tooLarge(limits));
          if (err || !res) {
            // A broken connection usually means the process died: answer once its exit has
            // been handled, so the next call is not routed to it (nor the strike counted late).
            // Noted as cut off now: the exit handler counts strikes from this set.
            this.crashedFunctions.add(fnId);
            return void this.exitedWithin(1000).then(() => finish(this.cutOff(entry, err)));
          }
          finish(parseFrame(res, limits));
        },
        maxFrameBytes(limits),
      );
      if (settled) return;
      timer = setTimeout(() => {
        this.timedOutFunctions.add(fnId);
        finish(
          failed("timeout", `The function did not answer within ${request.timeoutMs / 1000} s`),
        );
        abort();
      }, request.timeoutMs);
    });
  }

  private exitedWithin(ms: number): Promise<void> {
    if (this.state === "dead") return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      void this.exited.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The answer of an invocation whose connection broke: why, and whose fault it was. */
  private cutOff(entry: Running, err: Error | null | undefined): InvokeResult {
    if (this.state !== "dead") {
      // The process lives: a transport error, not the function's doing (no strike).
      this.crashedFunctions.delete(entry.functionId);
      return failed(
        "internal",
        `The connection to the runtime broke (${err?.message ?? "no answer"}); try again`,
      );
    }
    if (this.killReason === "cpu") {
      if (this.culprit === entry) {
        return failed(
          "cpu",
          `The function exceeded its CPU budget of ${entry.cpuMs} ms (its code kept the runtime busy without pause)`,
        );
      }
      return failed(
        "replaced",
        "The runtime process running this invocation was replaced because another invocation in it exceeded its CPU budget; try again",
        503,
      );
    }
    if (this.killReason === "memory") {
      return failed(
        "crashed",
        "The runtime process running this invocation went past its memory bound and was stopped",
      );
    }
    return failed(
      "crashed",
      "The runtime process running this invocation stopped (it ran out of memory, hung, or was restarted)",
    );
  }

  /** Pings the supervisor; resolves true if it answered within `timeoutMs`. */
  heartbeat(timeoutMs: number): Promise<boolean> {
    this.beating = true;
    return new Promise<boolean>((resolve) => {
      const req = http.get(
        {
          ...this.address(),
          path: "/__wb/health",
          headers: { [invokeHeaderNames.token]: this.token },
          agent: this.agent,
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            try {
              const body = JSON.parse(Buffer.concat(chunks).toString());
              this.loadedIsolates = body.loadedIsolates;
              this.lastBeatAt = Date.now();
              this.timedOutFunctions.clear();
              resolve(true);
            } catch {
              resolve(false);
            }
          });
        },
      );
      req.on("timeout", () => req.destroy());
      req.on("error", () => resolve(false));
    }).finally(() => {
      this.beating = false;
    });
  }

  /** Resident memory in bytes, read from /proc (0 where unavailable). */
  residentBytes(): number {
    try {
      const status = fs.readFileSync(`/proc/${this.workerdPid()}/status`, "latin1");
      const kb = /VmRSS:\s+(\d+)/.exec(status);
      return kb ? Number(kb[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  }

  /** workerd's own pid: setpriv execs it, so the child's pid is workerd's. */
  private workerdPid(): number | undefined {
    return this.child?.pid;
  }

  /** Kills the process on the host's decision; its invocations answer by `reason`. */
  killFor(reason: KillReason, culprit: Running | null = null): void {
    if (this.killReason) return;
    this.killReason = reason;
    this.culprit = culprit;
    this.kill();
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }

  /** Stops the process and resolves when it has exited. */
  stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once("exit", () => resolve());
      this.child.kill("SIGTERM");
      setTimeout(() => this.kill(), 2000).unref();
    });
  }
}
