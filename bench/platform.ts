// Workerbase under test: the real `workerbase serve` (started as the end-to-end tests start it),
// functions deployed through its API, and timed single requests against it.
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import {
  deployFunction,
  startServer,
  waitForDeploy,
  workerdPidsFor,
  type TestServer,
} from "../test/helpers/server.js";
import type { Target } from "./baselines.js";

export { deployFunction, waitForDeploy };

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export interface Timed {
  status: number;
  body: string;
  ms: number;
}

/** One request over a keep-alive connection, timed from send to the last byte. */
export function timedRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString(),
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Closes the keep-alive connections of timedRequest (so the process can exit). */
export function closeConnections(): void {
  agent.destroy();
}

/** A running Workerbase host with the defaults a user gets (only the keys are fixed). */
export interface Platform {
  server: TestServer;
  port: number;
  key: string;
  target: Target;
  /** Invoke route of a function. */
  invokePath: (id: string) => string;
  /** Runs `fn` against the platform API; throws on an unexpected status. */
  api: (method: string, route: string, body?: unknown, key?: string) => Promise<any>;
  /** Host and workerd processes. */
  hostPid: () => number;
  workerdPids: () => number[];
  /** /healthz: the runtime processes with their pids, rss and loaded isolates. */
  health: () => Promise<any>;
}

const dataDirs = new Set<string>();

/** Deletes the data directories of every platform started so far (all must be stopped). */
export function removeDataDirs(): void {
  for (const dir of dataDirs) fs.rmSync(dir, { recursive: true, force: true });
  dataDirs.clear();
}

/**
 * Starts Workerbase; with `dataDir` and `key`, restarts one that ran before. Its store is
 * SQLite in the data dir unless `databaseUrl` names a PostgreSQL database (a DATABASE_URL in
 * the bench's own environment is not inherited). `name` is its target name in the tables.
 */
export async function startPlatform(
  options: {
    dataDir?: string;
    key?: string;
    env?: Record<string, string>;
    databaseUrl?: string;
    name?: string;
  } = {},
): Promise<Platform> {
  // Named so that its workerd processes can be told from other runs' (their config lives in it).
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "wb-bench-data-"));
  dataDirs.add(dataDir);
  const server = await startServer({
    dataDir,
    env: {
      // The defaults a user gets: workerd processes per core, no private egress.
      WORKERBASE_RUNTIME_PROCESSES: "",
      WORKERBASE_ALLOW_PRIVATE_NETWORK: "0",
      DATABASE_URL: options.databaseUrl ?? "",
      ...(options.key ? { WORKERBASE_API_KEY: options.key } : {}),
      ...options.env,
    },
  });
  let stopping = false;
  server.child.once("exit", (code, signal) => {
    if (!stopping)
      console.error(
        `Workerbase exited unexpectedly (code ${code}, signal ${signal}); its last output:\n` +
          server.output().slice(-4000),
      );
  });
  const port = Number(new URL(server.url).port);
  const workerdPids = () => workerdPidsFor(server.dataDir);
  const api = async (method: string, route: string, body?: unknown, key = server.key) => {
    const res = await server.call(method, route, body, { "x-api-key": key });
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
    return res.status === 204 ? null : res.json();
  };
  return {
    server,
    port,
    key: server.key,
    invokePath: (id) => `/platform/v1/functions/${id}/invoke`,
    api,
    hostPid: () => server.child.pid!,
    workerdPids,
    health: () => server.health(),
    target: {
      name: options.name ?? "Workerbase",
      port,
      pids: () => [server.child.pid!, ...workerdPids()],
      stop: async () => {
        stopping = true;
        await server.stop();
      },
    },
  };
}

/** Creates a project through the admin API; resolves with its key. */
export async function createProject(p: Platform, name: string): Promise<string> {
  const res = await fetch(`${p.server.url}/admin/v1/projects`, {
    method: "POST",
    headers: { "x-admin-key": p.server.adminKey, "content-type": "application/json" },
    body: JSON.stringify({ project: { name } }),
  });
  if (res.status !== 201) throw new Error(`project create: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { data: { api_key: string } }).data.api_key;
}

/** Creates and deploys a function; resolves with its id once it is deployed. */
export async function deploy(
  p: Platform,
  name: string,
  code: string,
  key = p.key,
): Promise<string> {
  const fn = await deployFunction(p.server, { name, code }, key);
  if (fn.status !== "deployed") throw new Error(`deploy of ${name} failed: ${fn.deploy_error}`);
  return fn.id as string;
}
