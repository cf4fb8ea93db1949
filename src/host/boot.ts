import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { Hono } from "hono";
import type { Config } from "./config.js";
import { openStore } from "../store/db.js";
import { ProjectService } from "../projects/service.js";
import { adminRoutes } from "../projects/routes.js";
import { FunctionService } from "../functions/service.js";
import { functionRoutes } from "../functions/routes.js";
import { createInvokeHandler, invokePath } from "../functions/invoke.js";
import { InvocationService } from "../invocations/service.js";
import { invocationRoutes } from "../invocations/routes.js";
import { RuntimePool, compatibilityDate } from "../runtime/pool.js";
import { startInternalServer } from "../runtime/internal.js";
import { requireKey, withErrors, type PlatformEnv } from "../http/app.js";
import { RateLimiter } from "../http/ratelimit.js";
import { loadMasterKey, SecretBox } from "../secrets/crypto.js";
import { SecretService } from "../secrets/service.js";
import { secretRoutes } from "../secrets/routes.js";

export interface RunningHost {
  url: string;
  port: number;
  shutdown: () => Promise<void>;
}

/** Boots the whole host: store, runtime pool, internal and public HTTP servers. */
export async function startHost(
  config: Config,
  print: (line: string) => void = console.log,
): Promise<RunningHost> {
  const log = (line: string) => console.error(`${new Date().toISOString()} ${line}`);
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const db = await openStore(config.dataDir);
  const projects = new ProjectService(db);
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
  let secrets: SecretService | undefined;
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
          secrets: await secrets!.envFor(found.function.project_id, found.function.id),
          limits,
        };
      },
      kv: async () => new Response("KV is not available", { status: 500 }),
      db: async () => new Response("DB is not available", { status: 500 }),
    },
    () => pool!.token,
    log,
  );

  pool = new RuntimePool({
    dataDir: config.dataDir,
    processes: config.runtimeProcesses,
    hostInternalPort: internal.port,
    allowPrivateNetwork: config.allowPrivateNetwork,
    isolateHeapMb: config.isolateHeapMb,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
    stuckKillMs: config.stuckKillMs,
    maxIsolatesPerProcess: config.maxIsolatesPerProcess,
    maxProcessRssBytes: config.maxProcessRssBytes,
    log,
  });
  functions = new FunctionService(db, pool, {
    publicUrl: config.publicUrl,
    deployProbeTimeoutMs: config.deployProbeTimeoutMs,
    log,
  });
  await functions.recoverInterruptedDeploys();
  secrets = new SecretService(
    db,
    new SecretBox(loadMasterKey(config.dataDir, config.masterKey)),
    functions,
  );
  const rateLimiter = new RateLimiter(config.rateLimitPerMinute);

  const app = withErrors(new Hono(), log);
  app.get("/healthz", (c) => {
    const ok = pool!.healthy();
    return c.json(
      { ok, runtime: pool!.describe(), restarts: pool!.stats.restarts },
      ok ? 200 : 503,
    );
  });
  app.route("/admin/v1", withErrors(adminRoutes(projects, config.adminKey), log));
  const platform = withErrors(new Hono<PlatformEnv>(), log);
  platform.use("*", requireKey(projects, rateLimiter));
  platform.route("/functions", functionRoutes(functions));
  platform.route("/functions", invocationRoutes(functions, invocations));
  platform.route("/", secretRoutes(secrets));
  app.route("/platform/v1", platform);

  const invoke = createInvokeHandler({
    projects,
    functions,
    invocations,
    pool,
    rateLimiter,
    publicUrl: config.publicUrl,
    maxRequestBodyBytes: config.maxRequestBodyBytes,
    maxErrorChars: config.maxErrorChars,
    log,
  });
  const honoListener = getRequestListener(app.fetch);
  const server = http.createServer((req, res) => {
    const match = invokePath.exec(req.url ?? "");
    if (match) void invoke.serve(req, res, match);
    else void honoListener(req, res);
  });
  server.requestTimeout = 330_000;
  server.keepAliveTimeout = 30_000;

  await pool.start();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    (stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = Date.now() + config.shutdownGraceMs;
      while (invoke.inFlight() > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      server.closeAllConnections();
      await closed;
      await functions!.settle();
      await invocations.flush();
      await pool!.stop();
      await internal.close();
      await db.destroy();
    })());

  return { url: `http://${config.host}:${port}`, port, shutdown };
}
