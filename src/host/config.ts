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
  /** Nesting of a JSON request body and of an agent tool's input_schema; deeper is a 400. */
  maxJsonDepth: 64,
  /** Functions one project may have; creating one more is a 409. */
  maxFunctionsPerProject: 1000,
  /** workerd processes; projects are spread across them. */
  runtimeProcesses: Math.max(2, os.availableParallelism?.() ?? os.cpus().length),
  /**
   * How often each workerd process is pinged and its memory read: the resolution of the CPU
   * budget (time a process's event loop stays blocked) and of the memory bound.
   */
  heartbeatIntervalMs: 100,
  /** A process blocked this long gets no new work until it answers again. */
  lateAfterMs: 500,
  /** A function's CPU budget (runtime_config.cpu_ms) unless it sets one, and the most allowed. */
  defaultCpuMs: 1000,
  maxCpuMs: 30_000,
  /**
   * CPU budget bounds (ms) of the runtime's tiers: a function runs in the smallest that fits
   * its cpu_ms, so one allowed 30 s can only ever delay functions allowed as much.
   */
  cpuTiersMs: [1000, 5000, 30_000],
  /**
   * V8 heap limits (MB) of the runtime's memory tiers. A function runs in the smallest tier
   * that fits its runtime_config.memory; an isolate past the limit aborts its process.
   */
  memoryTiersMb: [128, 256, 512, 1024],
  /** Strikes (process hangs or crashes) within `strikeWindowMs` that hold a function back. */
  strikesToHold: 3,
  strikeWindowMs: 10 * 60_000,
  /** How long a held-back function answers 503. */
  holdMs: 5 * 60_000,
  /**
   * Loaded isolates after which a process is drained and replaced. An idle isolate costs about
   * 1.9 MB resident (bench/RESULTS.md), so 250 are under 500 MB: with two processes and the
   * host, 10,000 functions deployed and called stay within 2 GB in total, recycling included.
   */
  maxIsolatesPerProcess: 250,
  /**
   * Resident memory after which a process is drained and replaced: the safety net for busy
   * isolates, whose garbage alone can take a process past 600 MB under load before V8 collects
   * it, so a lower bound would recycle hot processes (and cold-start their functions) every
   * few seconds. It is never below twice the tier's heap limit.
   */
  maxProcessRssBytes: 1024 * 1024 * 1024,
  /** In-flight invocations get at most this long to finish on shutdown. */
  shutdownGraceMs: 10_000,
  /** Invocation records are written in batches this often. */
  recordFlushMs: 100,
  /** Requests per minute per API key; 0 means off. */
  rateLimitPerMinute: 0,
  /**
   * Wrong keys (API or admin) one client address may present per minute; past it that address
   * gets 429 for the rest of the minute, and on the invoke route its keys are not looked at (a
   * private function still answers 404).
   */
  maxFailedKeyAttemptsPerMinute: 100,
  /** The shortest WORKERBASE_API_KEY or WORKERBASE_ADMIN_KEY the host starts with. */
  minOperatorKeyChars: 16,
  /** Let functions fetch loopback and private addresses (development, tests). */
  allowPrivateNetwork: false,
  /**
   * A separate origin for invocations (`--invoke-origin`, WORKERBASE_INVOKE_ORIGIN), on another
   * host name than the dashboard. Unset, every invocation answer carries a CSP sandbox so a
   * function's page gets an opaque origin; set, only answers to requests for this host do not.
   */
  invokeOrigin: undefined as string | undefined,
  /** Expired KV pairs are deleted this often (reads never return them meanwhile). */
  kvSweepIntervalMs: 60_000,
  /** Child processes running project-database (env.DB) statements. */
  dbProcesses: 2,
  /** Time limit of one data-API statement; env.DB statements get their function's timeout. */
  dbStatementTimeoutMs: 30_000,
  /** Project database files each database process keeps open. */
  dbMaxOpenPerProcess: 64,
  /** Largest env.DB request or data-API body, and largest answer of one query. */
  dbMaxRequestBytes: 32 * 1024 * 1024,
  /** Deploys that time out the probe fail after this long. */
  deployProbeTimeoutMs: 15_000,
  /**
   * A running workflow execution's lease, renewed every third of it while it runs: a host that
   * dies frees its executions after at most this long, so another takes them within 30 s.
   */
  workflowLeaseMs: 20_000,
  /** How often wait timeouts and abandoned workflow executions are looked for. */
  workflowSweepMs: 1000,
  /** Time limit of a workflow webhook node's HTTP call. */
  workflowWebhookTimeoutMs: 10_000,
  /** Largest serialized `vars` (and `context`) of a workflow execution. */
  workflowMaxVarsBytes: 1024 * 1024,
  /** A webhook delivery attempt succeeds on a 2xx answered within this long. */
  webhookAttemptTimeoutMs: 10_000,
  /** Waits before the retries of a failed delivery (WORKERBASE_WEBHOOK_RETRY_DELAYS, seconds). */
  webhookRetryDelaysMs: [10_000, 40_000, 90_000],
  /** A delivery waiting for a retry holds back its conversation's later events this long at most. */
  webhookHoldBackMs: 30_000,
  /** How often due deliveries (and queued inbound messages) are looked for in the store. */
  webhookPollMs: 250,
  /** Delivery attempts in flight at once per host; a hanging receiver takes one slot, at most 10 s. */
  webhookMaxInFlight: 64,
  /**
   * A claimed delivery's (or inbound message's) lease, renewed while its attempt runs: a host
   * that dies mid-attempt frees it after at most this long, so another retries within 30 s.
   */
  webhookLeaseMs: 20_000,
  /** Messages of a conversation given to workflows in `whatsapp_context` (the latest ones). */
  whatsappContextMessages: 50,
  /**
   * Where this host listens for the other hosts of its cluster (`--cluster-address`,
   * WORKERBASE_CLUSTER_ADDRESS): they send it the statements of the project databases it
   * owns. Port 0 picks a free one; across machines give an address the others can reach.
   */
  clusterAddress: "127.0.0.1:0",
  /** A project database's owner renews its lease this often; unrenewed, it lapses after... */
  dbLeaseRenewMs: 5000,
  /** ...this long, and another host may take the database. */
  dbLeaseMs: 15_000,
  /** Hosts `serve` runs on this machine behind one port (`--workers`). */
  workers: 1,
  /** This host's number among `--workers` (0 for the first, or when there is one). */
  workerIndex: 0,
  /**
   * How often each host reads the store's change log (what other hosts changed). On
   * PostgreSQL, NOTIFY delivers changes at once and this read is only the fallback.
   */
  changePollMs: 200,
  changePollPostgresMs: 1000,
  /** Invocation records are kept this long (WORKERBASE_INVOCATION_RETENTION_DAYS)... */
  invocationRetentionMs: 7 * 24 * 60 * 60_000,
  /** ...and at most this many per function, the newest (WORKERBASE_INVOCATIONS_PER_FUNCTION). */
  invocationsPerFunction: 1000,
  /** How often old invocation records are pruned. */
  invocationPruneMs: 60_000,
  /** How often a host adds its requests to the cluster's rate-limit windows and reads them. */
  rateLimitSyncMs: 1000,
  /** Versions kept per function, the newest (WORKERBASE_VERSIONS_KEPT); never the live one. */
  versionsKept: 100,
  /** A schedule tick more late than this (the host was busy or its clock jumped) is skipped. */
  scheduleStaleMs: 60_000,
  /** How often each host reads every schedule afresh (changes reach it at once besides). */
  scheduleReloadMs: 60_000,
};

export type Config = typeof defaults & {
  publicUrl: string;
  apiKey?: string;
  adminKey?: string;
  masterKey?: string;
  /** `postgres://...` (DATABASE_URL, --database-url): the cluster's store; unset, SQLite. */
  databaseUrl?: string;
  /**
   * This host's one identity (WORKERBASE_HOST_ID, else kept in the data dir, suffixed with
   * the worker's number under `--workers`): the owner of the work it claims, `host` in /healthz.
   */
  hostId?: string;
  /**
   * The project databases' folder (WORKERBASE_D1_DIR; default `<data dir>/d1`): in a cluster,
   * one every host can open (the same folder on one machine, a shared volume across machines).
   */
  d1Dir?: string;
  /** A listening socket inherited from `serve --workers` (its fd), instead of binding the port. */
  listenFd?: number;
  /** Meta's app secret: checks `X-Hub-Signature-256` of inbound WhatsApp webhooks. */
  whatsappAppSecret?: string;
  /** Answers Meta's verification challenge. */
  whatsappVerifyToken?: string;
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

/** A comma-separated list of seconds (decimals allowed), as milliseconds. */
function seconds(value: string | undefined, name: string): number[] | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  return value.split(",").map((part) => {
    const n = Number(part.trim());
    if (part.trim() === "" || !Number.isFinite(n) || n < 0 || n > 86_400)
      throw new Error(`${name} must be comma-separated seconds (0 to 86400), got "${value}"`);
    return Math.round(n * 1000);
  });
}

/**
 * `--invoke-origin` as an origin (`scheme://host[:port]`). It must be on another host name than
 * the dashboard: pages served on it share cookies and storage with anything else on that host.
 */
function origin(value: string | undefined, publicUrl: string): string | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new Error(`invoke-origin must be an http(s) URL, got "${value}"`);
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.pathname.length > 1)
    throw new Error(`invoke-origin must be an http(s) origin without a path, got "${value}"`);
  let dashboard = "";
  try {
    dashboard = new URL(publicUrl).hostname;
  } catch {
    // checked no further: an unusable PUBLIC_URL fails elsewhere
  }
  if (url.hostname === dashboard)
    throw new Error(
      `invoke-origin must be on another host name than the dashboard (${dashboard}), got "${value}"`,
    );
  return url.origin;
}

/** A key set by the operator: refused when short enough to be guessed. */
function operatorKey(value: string | undefined, name: string): string | undefined {
  if (!value) return undefined;
  if (value.length < defaults.minOperatorKeyChars)
    throw new Error(
      `${name} is ${value.length} characters long; a key you set must be at least ` +
        `${defaults.minOperatorKeyChars} characters (for example the output of "openssl rand -hex 24")`,
    );
  return value;
}

/** `host:port` that other hosts can reach (so not 0.0.0.0 or ::). */
function clusterAddress(value: string | undefined): string {
  if (value === undefined || value.trim() === "") return defaults.clusterAddress;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(value.trim());
  if (!m || Number(m[2]) > 65535)
    throw new Error(`cluster-address must be host:port, got "${value}"`);
  if (m[1] === "0.0.0.0" || m[1] === "[::]")
    throw new Error(
      `cluster-address must be an address the other hosts reach this one on, not ${m[1]}`,
    );
  return value.trim();
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
    invokeOrigin: origin(flag(args, "invoke-origin") ?? env.WORKERBASE_INVOKE_ORIGIN, publicUrl),
    apiKey: operatorKey(env.WORKERBASE_API_KEY, "WORKERBASE_API_KEY"),
    adminKey: operatorKey(env.WORKERBASE_ADMIN_KEY, "WORKERBASE_ADMIN_KEY"),
    masterKey: env.WORKERBASE_MASTER_KEY || undefined,
    databaseUrl: flag(args, "database-url") || env.DATABASE_URL || undefined,
    hostId: env.WORKERBASE_HOST_ID || undefined,
    d1Dir: env.WORKERBASE_D1_DIR ? path.resolve(env.WORKERBASE_D1_DIR) : undefined,
    clusterAddress: clusterAddress(flag(args, "cluster-address") ?? env.WORKERBASE_CLUSTER_ADDRESS),
    workers: int(flag(args, "workers") ?? env.WORKERBASE_WORKERS, "workers") || defaults.workers,
    workerIndex:
      int(env.WORKERBASE_WORKER_INDEX, "WORKERBASE_WORKER_INDEX") ?? defaults.workerIndex,
    listenFd: int(env.WORKERBASE_LISTEN_FD, "WORKERBASE_LISTEN_FD"),
    invocationRetentionMs:
      (int(env.WORKERBASE_INVOCATION_RETENTION_DAYS, "WORKERBASE_INVOCATION_RETENTION_DAYS") ?? 7) *
      24 *
      60 *
      60_000,
    invocationsPerFunction:
      int(env.WORKERBASE_INVOCATIONS_PER_FUNCTION, "WORKERBASE_INVOCATIONS_PER_FUNCTION") ??
      defaults.invocationsPerFunction,
    versionsKept:
      int(env.WORKERBASE_VERSIONS_KEPT, "WORKERBASE_VERSIONS_KEPT") ?? defaults.versionsKept,
    whatsappAppSecret: env.WHATSAPP_APP_SECRET || undefined,
    whatsappVerifyToken: env.WHATSAPP_VERIFY_TOKEN || undefined,
    webhookRetryDelaysMs:
      seconds(env.WORKERBASE_WEBHOOK_RETRY_DELAYS, "WORKERBASE_WEBHOOK_RETRY_DELAYS") ??
      defaults.webhookRetryDelaysMs,
    rateLimitPerMinute:
      int(env.WORKERBASE_RATE_LIMIT_PER_MINUTE, "WORKERBASE_RATE_LIMIT_PER_MINUTE") ?? 0,
    allowPrivateNetwork:
      args.includes("--allow-private-network") || bool(env.WORKERBASE_ALLOW_PRIVATE_NETWORK),
    runtimeProcesses:
      int(flag(args, "processes") ?? env.WORKERBASE_RUNTIME_PROCESSES, "processes") ||
      defaults.runtimeProcesses,
  };
}
