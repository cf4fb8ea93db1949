import os from "node:os";
import path from "node:path";

/** Every tunable of the host in one place, units in the names. */
export const defaults = {
  host: "127.0.0.1",
  port: 8787,
  dataDir: "./.workerbase",
  /** Largest request body a function may receive, as on Cloudflare. */
  maxRequestBodyBytes: 100 * 1024 * 1024,
  /** Largest response body a function may return; past it the invocation fails. */
  maxResponseBodyBytes: 100 * 1024 * 1024,
  /** Bodies kept in an invocation record. */
  recordBodyBytes: 64 * 1024,
  /** Console lines kept per invocation; later lines are dropped with one notice. */
  maxConsoleLines: 1000,
  /** Console bytes kept per invocation. */
  maxConsoleBytes: 256 * 1024,
  /** Outbound fetches one invocation may make (Cloudflare's free plan allows 50). */
  maxSubrequests: 50,
  /** Error messages in invoke answers are cut to this many characters. */
  maxErrorChars: 512,
  /** workerd processes; projects are spread across them. */
  runtimeProcesses: Math.max(2, os.availableParallelism?.() ?? os.cpus().length),
  /** How often each workerd process is pinged, and how late an answer may be. */
  heartbeatIntervalMs: 1000,
  heartbeatTimeoutMs: 2000,
  /** A process this late on its heartbeat is killed and replaced. */
  stuckKillMs: 5000,
  /** V8 heap limit of every isolate in a workerd process (MB). */
  isolateHeapMb: 1024,
  /** Loaded isolates after which a process is drained and replaced. */
  maxIsolatesPerProcess: 2000,
  /** Resident memory after which a process is drained and replaced. */
  maxProcessRssBytes: 1536 * 1024 * 1024,
  /** In-flight invocations get at most this long to finish on shutdown. */
  shutdownGraceMs: 10_000,
  /** Invocation records are written in batches this often. */
  recordFlushMs: 100,
  /** Requests per minute per API key; 0 means off. */
  rateLimitPerMinute: 0,
  /** Let functions fetch loopback and private addresses (development, tests). */
  allowPrivateNetwork: false,
  /** Deploys that time out the probe fail after this long. */
  deployProbeTimeoutMs: 15_000,
};

export type Config = typeof defaults & {
  publicUrl: string;
  apiKey?: string;
  adminKey?: string;
  masterKey?: string;
};

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i >= 0) return args[i + 1];
  const eq = args.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}

function int(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`${name} must be a non-negative integer, got "${value}"`);
  return n;
}

function bool(value: string | undefined): boolean {
  return value === "1" || value === "true" || value === "yes";
}

/** Builds the host configuration from command-line flags and environment variables. */
export function loadConfig(args: string[], env: NodeJS.ProcessEnv = process.env): Config {
  const host = flag(args, "host") ?? env.HOST ?? defaults.host;
  const port = int(flag(args, "port") ?? env.PORT, "port") ?? defaults.port;
  const dataDir = path.resolve(flag(args, "data") ?? env.WORKERBASE_DATA_DIR ?? defaults.dataDir);
  const publicUrl = (
    flag(args, "public-url") ??
    env.PUBLIC_URL ??
    `http://${host}:${port}`
  ).replace(/\/+$/, "");
  return {
    ...defaults,
    host,
    port,
    dataDir,
    publicUrl,
    apiKey: env.WORKERBASE_API_KEY || undefined,
    adminKey: env.WORKERBASE_ADMIN_KEY || undefined,
    masterKey: env.WORKERBASE_MASTER_KEY || undefined,
    rateLimitPerMinute:
      int(env.WORKERBASE_RATE_LIMIT_PER_MINUTE, "WORKERBASE_RATE_LIMIT_PER_MINUTE") ?? 0,
    allowPrivateNetwork:
      args.includes("--allow-private-network") || bool(env.WORKERBASE_ALLOW_PRIVATE_NETWORK),
    runtimeProcesses:
      int(flag(args, "processes") ?? env.WORKERBASE_RUNTIME_PROCESSES, "processes") ||
      defaults.runtimeProcesses,
  };
}
