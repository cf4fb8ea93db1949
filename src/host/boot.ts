import fs from "node:fs";
import path from "node:path";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { Hono } from "hono";
import type { Config } from "./config.js";
import { openStore, storeKind, type Store } from "../store/db.js";
import { ChangeFeed } from "../store/changes.js";
import { systemClock, type Clock } from "../store/clock.js";
import { Scheduler } from "../schedules/scheduler.js";
import { checkMasterKey } from "../secrets/sentinel.js";
import { sql } from "kysely";
import { ProjectService } from "../projects/service.js";
import { adminRoutes } from "../projects/routes.js";
import { FunctionService } from "../functions/service.js";
import { functionRoutes } from "../functions/routes.js";
import { createInvokeHandler, invokePath, Invoker } from "../functions/invoke.js";
import { InvocationService } from "../invocations/service.js";
import { InvocationMetrics } from "../invocations/metrics.js";
import { InvocationRetention } from "../invocations/retention.js";
import { invocationRoutes } from "../invocations/routes.js";
import { RuntimePool, compatibilityDate } from "../runtime/pool.js";
import { startInternalServer } from "../runtime/internal.js";
import { capLogs, parseLateLines } from "../runtime/frame.js";
import { requireKey, withErrors, type PlatformEnv } from "../http/app.js";
import { RateLimiter } from "../http/ratelimit.js";
import { KvService } from "../kv/service.js";
import { kvBindingHandler } from "../kv/binding.js";
import { kvRoutes } from "../kv/routes.js";
import { loadMasterKey, SecretBox } from "../secrets/crypto.js";
import { SecretService } from "../secrets/service.js";
import { secretRoutes } from "../secrets/routes.js";
import { serveDashboard } from "./dashboard.js";
import { createWebhooks } from "../webhooks/host.js";
import { DbExecutor } from "../db/executor.js";
import { dbBindingHandler } from "../db/binding.js";
import { databaseRoutes } from "../db/routes.js";
import { DbCluster, splitAddress } from "../db/cluster.js";
import { createWorkflows, hostIdFor } from "../workflows/host.js";
import { mcpRoutes } from "../mcp/routes.js";
import { KeyGuard } from "../http/keyguard.js";
import { removeStaleSocketDirs } from "../runtime/sockets.js";
import { secureDataDir } from "./datadir.js";
import { healthRoutes } from "./health.js";
import { listen } from "./listen.js";
import { childEnv } from "./childenv.js";

export interface RunningHost {
  url: string;
  port: number;
  shutdown: () => Promise<void>;
  /** Reads every schedule now and resolves once they are loaded (tests moving a clock). */
  reloadSchedules: () => Promise<void>;
}

/** Boots the whole host: store, runtime pool, internal and public HTTP servers. */
export async function startHost(
  config: Config,
  print: (line: string) => void = console.log,
  /** `clock`: the time of background work (leases, schedules); tests pass a ManualClock. */
  options: { clock?: Clock } = {},
): Promise<RunningHost> {
  const log = (line: string) => console.error(`${new Date().toISOString()} ${line}`);
  // The port is taken first, so a busy one fails before anything is created or started.
  // Until the host is ready, requests answer 503.
  let ready: http.RequestListener | undefined;
  const server = http.createServer((req, res) => {
    if (ready) return ready(req, res);
    res.writeHead(503, {
      "content-type": "application/json",
      "retry-after": "1",
      "x-content-type-options": "nosniff",
    });
    res.end(JSON.stringify({ error: "Workerbase is starting" }));
  });
  server.requestTimeout = 330_000;
  server.keepAliveTimeout = 30_000;
  await listen(server, config.port, config.host, config.listenFd);
  try {
    secureDataDir(config.dataDir, log);
    const stale = removeStaleSocketDirs();
    if (stale > 0) log(`removed ${stale} runtime socket folder(s) left by hosts that were killed`);
  } catch (err) {
    server.close();
    throw err;
  }
  const hostId =
    config.hostId ?? hostIdFor(config.dataDir, config.workers > 1 ? config.workerIndex : undefined);
  let db: Store;
  try {
    db = await openStore(config.dataDir, {
      databaseUrl: config.databaseUrl,
      migrate: config.workers <= 1,
      log,
    });
  } catch (err) {
    server.close();
    throw err;
  }
  const storeName = storeKind(db);
  const clustered = storeName === "postgres" || config.workers > 1;
  const clock = options.clock ?? systemClock;
  const masterKey = loadMasterKey(config.dataDir, config.masterKey);
  const box = new SecretBox(masterKey);
  try {
    await checkMasterKey(db, box);
  } catch (err) {
    server.close();
    await db.destroy();
    throw err;
  }
  const changes = new ChangeFeed(db, {
    hostId,
    databaseUrl: config.databaseUrl,
    pollMs: storeName === "postgres" ? config.changePollPostgresMs : config.changePollMs,
    clock,
    log,
  });
  await changes.start();
  const projects = new ProjectService(db, changes);
  await projects.bootstrap(config.dataDir, config.apiKey, print);

  let pool: RuntimePool | undefined;
  const invocations = new InvocationService(db, {
    flushMs: config.recordFlushMs,
    recordBodyBytes: config.recordBodyBytes,
    log,
  });
  const limits = {
    maxConsoleLines: config.maxConsoleLines,
    maxConsoleBytes: config.maxConsoleBytes,
    maxResponseBodyBytes: config.maxResponseBodyBytes,
    maxSubrequests: config.maxSubrequests,
  };
  let functions: FunctionService | undefined;
  const kv = new KvService(db);
  kv.startSweeping(config.kvSweepIntervalMs, log);
  let secrets: SecretService | undefined;
  const databases = new DbExecutor({
    dir: d1Dir(config),
    processes: config.dbProcesses,
    timeoutMs: config.dbStatementTimeoutMs,
    maxOpenPerProcess: config.dbMaxOpenPerProcess,
    maxResultBytes: config.dbMaxRequestBytes,
    log,
    synchronousCommits: clustered,
  });
  // In a cluster each project database has one owner host; the others forward to it.
  let dbCluster: DbCluster | undefined;
  if (clustered) {
    dbCluster = new DbCluster(db, {
      hostId,
      address: workerClusterAddress(config),
      masterKey,
      leaseMs: config.dbLeaseMs,
      renewMs: config.dbLeaseRenewMs,
      // The largest import (100 MiB of SQL) as JSON, with room for its escaping.
      maxBodyBytes: 256 * 1024 * 1024,
      clock,
      log,
    });
    try {
      await dbCluster.start(databases);
    } catch (err) {
      server.close();
      await databases.stop();
      await changes.stop();
      await db.destroy();
      throw new Error(
        `Cannot listen for the other hosts on ${config.clusterAddress} (${(err as Error).message}); pick another --cluster-address`,
      );
    }
  }
  const internal = await startInternalServer(
    {
      code: async (deploymentId) => {
        const found = await functions!.deploymentCode(deploymentId);
        if (!found) return null;
        return {
          moduleName: found.moduleName,
          code: found.code,
          compatibilityDate,
          compatibilityFlags: found.compatibilityFlags,
          timeoutMs: found.timeoutMs,
          secrets: await secrets!.envFor(found.function.project_id, found.function.id),
          limits,
        };
      },
      kv: kvBindingHandler(kv),
      late: (recordId, body) => {
        const lines = parseLateLines(body, limits);
        if (!lines) return false;
        return invocations.addLate(recordId, lines, (all) => capLogs(all, limits));
      },
      db: dbBindingHandler(databases, {
        maxRequestBytes: config.dbMaxRequestBytes,
        defaultTimeoutMs: config.dbStatementTimeoutMs,
        maxTimeoutMs: 300_000,
      }),
    },
    () => pool!.token,
    log,
  );

  pool = new RuntimePool({
    dataDir: config.dataDir,
    runtimeName: config.workers > 1 ? `host-${config.workerIndex}` : undefined,
    processes: config.runtimeProcesses,
    hostInternalPort: internal.port,
    allowPrivateNetwork: config.allowPrivateNetwork,
    memoryTiersMb: config.memoryTiersMb,
    onStrike: (ids, reason) => functions?.strike(ids, reason),
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    lateAfterMs: config.lateAfterMs,
    cpuTiersMs: config.cpuTiersMs,
    limits,
    env: childEnv(),
    maxIsolatesPerProcess: config.maxIsolatesPerProcess,
    maxProcessRssBytes: config.maxProcessRssBytes,
    log,
  });
  functions = new FunctionService(db, pool, {
    publicUrl: config.publicUrl,
    deployProbeTimeoutMs: config.deployProbeTimeoutMs,
    strikesToHold: config.strikesToHold,
    strikeWindowMs: config.strikeWindowMs,
    holdMs: config.holdMs,
    maxFunctionsPerProject: config.maxFunctionsPerProject,
    log,
    changes,
    clock,
    versionsKept: config.versionsKept,
  });
  await functions.loadHolds();
  // On one host a deploy still marked in progress was cut short by its restart; in a cluster
  // another host may be checking it, so only one older than any check counts, looked for often.
  const staleDeployMs = config.deployProbeTimeoutMs + 30_000;
  await functions.recoverInterruptedDeploys(clustered ? staleDeployMs : 0);
  const deploySweep = setInterval(() => {
    functions!
      .recoverInterruptedDeploys(staleDeployMs)
      .catch((err) => log(`looking for interrupted deploys failed: ${(err as Error).message}`));
  }, 30_000);
  deploySweep.unref();
  secrets = new SecretService(db, box, functions);
  const rateLimiter = new RateLimiter(config.rateLimitPerMinute, {
    db,
    clock,
    syncMs: config.rateLimitSyncMs,
    log,
  });
  rateLimiter.start();
  const retention = new InvocationRetention(db, {
    retentionMs: config.invocationRetentionMs,
    perFunction: config.invocationsPerFunction,
    intervalMs: config.invocationPruneMs,
    clock,
    log,
  });
  retention.start();
  const keyGuard = new KeyGuard(config.maxFailedKeyAttemptsPerMinute);

  const app = withErrors(new Hono(), log);
  const metrics = new InvocationMetrics(hostId);
  app.route(
    "/",
    healthRoutes({
      hostId,
      store: storeName,
      healthy: () => pool!.healthy(),
      storeProblem: () => storeProblem(db, changes),
      details: () => ({
        runtime: pool!.describe(),
        memory_enforcement: pool!.memory.enforcement,
        ...pool!.stats,
        databases: {
          pids: databases.pids(),
          ...databases.stats,
          // In a cluster: databases this host owns, and operations it forwarded or served.
          ...(dbCluster
            ? { owned: dbCluster.owned(), cluster_address: dbCluster.address, ...dbCluster.stats }
            : {}),
        },
      }),
      metrics: () => metrics.render(pool!.describe(), pool!.stats),
      adminKey: config.adminKey,
      listenHost: config.host,
      guard: keyGuard,
    }),
  );
  app.route("/admin/v1", withErrors(adminRoutes(projects, config.adminKey, keyGuard), log));
  const workflowInvoker = new Invoker(pool, invocations, functions, metrics);
  const workflows = createWorkflows({
    db,
    hostId,
    clock,
    config,
    functions,
    invoker: workflowInvoker,
    changes,
    log,
  });
  const scheduler = new Scheduler(db, functions, workflowInvoker, workflows.service, {
    hostId,
    clock,
    publicUrl: config.publicUrl,
    staleMs: config.scheduleStaleMs,
    reloadMs: config.scheduleReloadMs,
    log,
  });
  app.route(
    "/mcp",
    withErrors(
      mcpRoutes({
        projects,
        rateLimiter,
        keyGuard,
        functions,
        invoker: workflowInvoker,
        publicUrl: config.publicUrl,
      }),
      log,
    ),
  );
  const platform = withErrors(new Hono<PlatformEnv>(), log);
  platform.use("*", requireKey(projects, rateLimiter, keyGuard));
  platform.route("/functions", functionRoutes(functions));
  platform.route("/functions", invocationRoutes(functions, invocations));
  platform.route("/", secretRoutes(secrets));
  platform.route("/kv", kvRoutes(kv));
  platform.route(
    "/",
    databaseRoutes(databases, {
      maxRequestBytes: config.dbMaxRequestBytes,
      timeoutMs: config.dbStatementTimeoutMs,
    }),
  );
  const hooks = createWebhooks({
    db,
    hostId,
    clock,
    config,
    functions,
    invoker: new Invoker(pool, invocations, functions, metrics),
    log,
  });
  platform.route("/", hooks.platformRoutes);
  platform.route("/", workflows.routes);
  hooks.connectWorkflows(workflows.service);
  app.route("/webhooks", hooks.metaRoutes);
  app.route("/platform/v1", platform);
  app.get("*", serveDashboard());

  const invoker = new Invoker(pool, invocations, functions, metrics);
  const invoke = createInvokeHandler({
    projects,
    functions,
    invoker,
    rateLimiter,
    keyGuard,
    publicUrl: config.publicUrl,
    invokeOrigin: config.invokeOrigin,
    maxRequestBodyBytes: config.maxRequestBodyBytes,
    maxErrorChars: config.maxErrorChars,
    log,
  });
  const honoListener = getRequestListener(app.fetch);

  await pool.start();
  ready = (req, res) => {
    const match = invokePath.exec(req.url ?? "");
    if (match) void invoke.serve(req, res, match);
    else void honoListener(req, res);
  };
  const port = (server.address() as AddressInfo).port;
  hooks.start();
  await workflows.start();
  await scheduler.start();

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    (stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = Date.now() + config.shutdownGraceMs;
      const hooksStopped = hooks.stop(deadline);
      const workflowsStopped = workflows.stop(deadline);
      const schedulerStopped = scheduler.stop(deadline);
      while (invoke.inFlight() > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      server.closeAllConnections();
      await closed;
      await hooksStopped;
      await workflowsStopped;
      await schedulerStopped;
      await functions!.settle();
      invocations.releaseWaiting();
      await invocations.flush();
      await retention.stop();
      await rateLimiter.stop();
      await pool!.stop();
      // A graceful handover: running statements finish, the files close, the leases go.
      await dbCluster?.drain(Math.max(deadline, Date.now() + 2000));
      await databases.stop();
      await dbCluster?.release();
      await internal.close();
      await kv.stop();
      clearInterval(deploySweep);
      await changes.stop();
      await db.destroy();
    })());

  return {
    url: `http://${config.host}:${port}`,
    port,
    shutdown,
    reloadSchedules: () => scheduler.reloadNow(),
  };
}

/**
 * Null while the store answers, else why not (for /healthz): a quick query of its own, so a
 * load balancer learns within seconds that this host cannot serve.
 */
async function storeProblem(db: Store, changes: ChangeFeed): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      sql`select 1`.execute(db),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("no answer within 2 s")), 2000);
      }),
    ]);
    return changes.unavailable === null ? null : "the store's change notifications are down";
  } catch (err) {
    return (err as Error).message;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Where the project databases live: WORKERBASE_D1_DIR, else `<data dir>/d1`. A data dir from
 * before the setting keeps its files in `databases`, which moves to `d1` once.
 */
function d1Dir(config: Config): string {
  if (config.d1Dir) return config.d1Dir;
  const dir = path.join(config.dataDir, "d1");
  const legacy = path.join(config.dataDir, "databases");
  if (!fs.existsSync(dir) && fs.existsSync(legacy)) {
    try {
      fs.renameSync(legacy, dir);
    } catch (err) {
      // Another host of `serve --workers` moved it first.
      if (!fs.existsSync(dir)) throw err;
    }
  }
  return dir;
}

/** The hosts of `serve --workers` each take the next port after a fixed cluster address. */
function workerClusterAddress(config: Config): string {
  const [host, port] = splitAddress(config.clusterAddress);
  if (port === 0 || config.workers <= 1) return config.clusterAddress;
  return `${host.includes(":") ? `[${host}]` : host}:${port + config.workerIndex}`;
}
