import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createTestDatabase } from "./postgres.js";

const databaseOfDir = new Map<string, string>();

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const bin = path.join(root, "bin", "workerbase.js");

/** A free TCP port on loopback (released before use; good enough for tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

const createdDirs: string[] = [];
// Data dirs made here are removed when the test file's process ends (tests may restart a
// server on the same dir, so not at stop).
process.on("exit", () => {
  for (const dir of createdDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDataDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-test-"));
  createdDirs.push(dir);
  return dir;
}

export interface TestServer {
  url: string;
  api: string;
  key: string;
  adminKey: string;
  dataDir: string;
  /** The host's PostgreSQL store, when it has one (else its SQLite file in `dataDir`). */
  databaseUrl?: string;
  child: ChildProcess;
  output: () => string;
  /** GET /healthz with the admin key: the details (runtime and database processes). */
  health: () => Promise<any>;
  /** fetch against the platform API with the project key. */
  call: (
    method: string,
    route: string,
    body?: unknown,
    headers?: Record<string, string>,
  ) => Promise<Response>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export interface StartOptions {
  dataDir?: string;
  env?: Record<string, string>;
  args?: string[];
  /** Its own process group, so `stop` can signal the host and its children at once. */
  group?: boolean;
}

/** Starts the real `workerbase serve` on a free port with a fresh data dir. */
export async function startServer(options: StartOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? tempDataDir();
  const env = { ...options.env };
  // WORKERBASE_TEST_STORE=postgres (test/run.js's second pass): the same test against a host
  // on PostgreSQL, one fresh database per data dir (a restart on the dir finds its data).
  if (process.env.WORKERBASE_TEST_STORE === "postgres" && env.DATABASE_URL === undefined) {
    let url = databaseOfDir.get(dataDir);
    if (!url) {
      url = (await createTestDatabase()).url;
      databaseOfDir.set(dataDir, url);
    }
    env.DATABASE_URL = url;
  }
  const port = await freePort();
  const key =
    "wb_test_" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  // Operator-set keys must be at least 16 characters.
  const adminKey = "admin_" + crypto.randomBytes(12).toString("hex");
  let out = "";
  const child = spawn(
    process.execPath,
    [bin, "serve", "--port", String(port), "--data", dataDir, ...(options.args ?? [])],
    {
      env: {
        ...process.env,
        WORKERBASE_API_KEY: key,
        WORKERBASE_ADMIN_KEY: adminKey,
        WORKERBASE_ALLOW_PRIVATE_NETWORK: "1",
        WORKERBASE_RUNTIME_PROCESSES: "2",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: options.group ?? false,
    },
  );
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${out}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.status === 200) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`server did not become healthy:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const api = `${url}/platform/v1`;
  return {
    url,
    api,
    key: options.env?.WORKERBASE_API_KEY ?? key,
    adminKey: options.env?.WORKERBASE_ADMIN_KEY ?? adminKey,
    dataDir,
    databaseUrl: env.DATABASE_URL,
    child,
    output: () => out,
    health: async () =>
      (
        await fetch(`${url}/healthz`, {
          headers: { "x-admin-key": options.env?.WORKERBASE_ADMIN_KEY ?? adminKey },
        })
      ).json(),
    call: (method, route, body, headers = {}) =>
      fetch(api + route, {
        method,
        headers: {
          "x-api-key": options.env?.WORKERBASE_API_KEY ?? key,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...headers,
        },
        body:
          body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      }),
    stop: async (signal = "SIGTERM") => {
      // With `group`, as systemd or `docker stop` do: the host and its children get the signal.
      if (child.exitCode === null && child.signalCode === null)
        if (options.group) process.kill(-child.pid!, signal);
        else child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Creates and deploys a function; resolves with its resource once `deployed`. */
export async function deployFunction(
  server: TestServer,
  fn: Record<string, unknown>,
  key = server.key,
): Promise<any> {
  const created = await server.call("POST", "/functions", { function: fn }, { "x-api-key": key });
  if (created.status !== 201)
    throw new Error(`create failed: ${created.status} ${await created.text()}`);
  const { data } = (await created.json()) as any;
  const deployed = await server.call("POST", `/functions/${data.id}/deploy`, undefined, {
    "x-api-key": key,
  });
  if (deployed.status !== 202)
    throw new Error(`deploy failed: ${deployed.status} ${await deployed.text()}`);
  return waitForDeploy(server, data.id, key);
}

/** Polls a function until it leaves `deploying`. */
export async function waitForDeploy(
  server: TestServer,
  id: string,
  key = server.key,
): Promise<any> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await server.call("GET", `/functions/${id}`, undefined, { "x-api-key": key });
    const { data } = (await res.json()) as any;
    if (data.status !== "deploying") return data;
    if (Date.now() > deadline) throw new Error("deploy did not finish in 30 s");
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Polls until `check` returns a value (not undefined), for eventually-visible records. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** PIDs of running workerd processes whose parent is `pid` (or any, without pid). */
export function workerdPids(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = fs.readFileSync(`/proc/${entry}/comm`, "utf8").trim();
      if (comm === "workerd") pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** workerd processes started for this data dir (their config lives in it). */
export function workerdPidsFor(dataDir: string): number[] {
  return workerdPids().filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dataDir);
    } catch {
      return false;
    }
  });
}

/**
 * Runs one SQL statement on a host's own store, around the API (as an older version or an
 * operator would have written it): its SQLite file, or its PostgreSQL database. `?` marks
 * the parameters on both.
 */
export async function storeQuery(server: TestServer, text: string, params: unknown[] = []) {
  if (server.databaseUrl) {
    const { default: pg } = await import("pg");
    const client = new pg.Client({ connectionString: server.databaseUrl });
    await client.connect();
    try {
      let n = 0;
      return (
        await client.query(
          text.replace(/\?/g, () => `$${++n}`),
          params,
        )
      ).rows;
    } finally {
      await client.end();
    }
  }
  const { default: SQLite } = await import("better-sqlite3");
  const file = new SQLite(path.join(server.dataDir, "workerbase.db"));
  try {
    file.pragma("busy_timeout = 5000");
    const statement = file.prepare(text);
    return statement.reader ? statement.all(...params) : (statement.run(...params), []);
  } finally {
    file.close();
  }
}
