// The load generator: a closed-loop HTTP/1.1 client over raw keep-alive sockets, run in its
// own child process so its CPU use is measurable and the orchestrating process stays idle.
// Every latency is kept (microsecond resolution from hrtime), so percentiles are exact.
import { fork, type ChildProcess } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";

export interface LoadRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadJob {
  port: number;
  request: LoadRequest;
  /** Open keep-alive connections, each with one request in flight. */
  connections: number;
  /** Requests before the measured window (JIT, caches, connection setup). */
  warmupMs: number;
  durationMs: number;
}

export interface LoadResult {
  requests: number;
  /** Requests per second in the measured window. */
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Answers that were not 2xx, and broken connections. */
  non2xx: number;
  errors: number;
  /** CPU the load generator itself used in the window, as a share of one core. */
  clientCpu: number;
}

function serialize(port: number, r: LoadRequest): Buffer {
  const body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(r.body);
  let head = `${r.method} ${r.path} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n`;
  for (const [k, v] of Object.entries(r.headers ?? {})) head += `${k}: ${v}\r\n`;
  if (body.length > 0 || r.method !== "GET") head += `content-length: ${body.length}\r\n`;
  return Buffer.concat([Buffer.from(head + "\r\n"), body]);
}

const CRLFCRLF = Buffer.from("\r\n\r\n");

/**
 * Length of the first complete response in `buf` (-1 if incomplete) and its status. Handles
 * content-length and chunked bodies, which is all the servers under test send.
 */
function responseLength(buf: Buffer): [length: number, status: number] {
  const headEnd = buf.indexOf(CRLFCRLF);
  if (headEnd < 0) return [-1, 0];
  const head = buf.toString("latin1", 0, headEnd).toLowerCase();
  const status = Number(head.slice(9, 12));
  const cl = /\r\ncontent-length:\s*(\d+)/.exec(head);
  if (cl) {
    const total = headEnd + 4 + Number(cl[1]);
    return [buf.length >= total ? total : -1, status];
  }
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
    let at = headEnd + 4;
    for (;;) {
      const lineEnd = buf.indexOf("\r\n", at);
      if (lineEnd < 0) return [-1, status];
      const size = parseInt(buf.toString("latin1", at, lineEnd), 16);
      at = lineEnd + 2 + size + 2;
      if (at > buf.length) return [-1, status];
      if (size === 0) return [at, status];
    }
  }
  return [headEnd + 4, status];
}

/** Runs one job in this process (the child side). */
async function runJob(job: LoadJob): Promise<LoadResult> {
  const payload = serialize(job.port, job.request);
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  let measuring = false;
  let stopping = false;
  let inFlight = 0;
  const sockets: net.Socket[] = [];

  const connect = (): void => {
    const socket = net.connect(job.port, "127.0.0.1");
    socket.setNoDelay(true);
    sockets.push(socket);
    let pending: Buffer | null = null;
    let sentAt = 0n;
    const send = () => {
      if (stopping) return;
      inFlight++;
      sentAt = process.hrtime.bigint();
      socket.write(payload);
    };
    socket.on("connect", send);
    socket.on("data", (chunk: Buffer) => {
      pending = pending ? Buffer.concat([pending, chunk]) : chunk;
      for (;;) {
        const [length, status] = responseLength(pending);
        if (length < 0) return;
        const doneAt = process.hrtime.bigint();
        pending = length === pending.length ? null : pending.subarray(length);
        inFlight--;
        if (measuring) {
          latencies.push(Number(doneAt - sentAt) / 1e6);
          if (status < 200 || status > 299) non2xx++;
        }
        send();
        if (!pending) return;
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      if (stopping) return;
      // A broken connection: count it and open another, as wrk does.
      inFlight = Math.max(0, inFlight - 1);
      if (measuring) errors++;
      sockets.splice(sockets.indexOf(socket), 1);
      setTimeout(connect, 10);
    });
  };

  for (let i = 0; i < job.connections; i++) connect();
  await new Promise((r) => setTimeout(r, job.warmupMs));
  measuring = true;
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, job.durationMs));
  measuring = false;
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  const cpu = process.cpuUsage(cpuBefore);
  stopping = true;
  const deadline = Date.now() + 5000;
  while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  for (const s of sockets) s.destroy();

  const sorted = Float64Array.from(latencies).sort();
  const pick = (q: number) =>
    sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
  const sum = latencies.reduce((a, b) => a + b, 0);
  return {
    requests: latencies.length,
    rps: (latencies.length / elapsedMs) * 1000,
    p50Ms: pick(0.5),
    p90Ms: pick(0.9),
    p99Ms: pick(0.99),
    meanMs: latencies.length ? sum / latencies.length : NaN,
    non2xx,
    errors,
    clientCpu: (cpu.user + cpu.system) / 1000 / elapsedMs,
  };
}

/** The load generator's child process; one job at a time. */
export class LoadGenerator {
  private child: ChildProcess;
  private exited: Promise<void>;

  constructor() {
    this.child = fork(fileURLToPath(import.meta.url), ["--loadgen-child"], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.exited = new Promise((resolve) => this.child.once("exit", () => resolve()));
  }

  get pid(): number {
    return this.child.pid!;
  }

  run(job: LoadJob): Promise<LoadResult> {
    return new Promise((resolve, reject) => {
      const onExit = () => reject(new Error("the load generator exited"));
      this.child.once("exit", onExit);
      this.child.once("message", (result) => {
        this.child.off("exit", onExit);
        resolve(result as LoadResult);
      });
      this.child.send(job);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
    await this.exited;
  }
}

if (process.argv.includes("--loadgen-child")) {
  process.on("message", (job: LoadJob) => {
    void runJob(job).then((result) => process.send!(result));
  });
  process.on("disconnect", () => process.exit(0));
}
