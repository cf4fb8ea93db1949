// `serve --workers N`: N real hosts behind one port, sharing the SQLite store and data dir,
// each with its own workerd; stopping or killing the parent leaves no process behind.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  bin,
  deployFunction,
  eventually,
  freePort,
  startServer,
  workerdPidsFor,
  type TestServer,
} from "../helpers/server.js";
import { createTestDatabase, dropTestDatabases } from "../helpers/postgres.js";

/** A GET over a connection of its own, so the kernel may hand it to either host. */
function fresh(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      url,
      { agent: false, headers: { connection: "close", ...headers } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on("error", reject);
  });
}

/** Host ids answering /healthz over `tries` fresh connections. */
async function hostsAnswering(server: TestServer, tries = 60): Promise<Set<string>> {
  const hosts = new Set<string>();
  for (let i = 0; i < tries && hosts.size < 2; i++) {
    const res = await fresh(`${server.url}/healthz`);
    if (res.status === 200) hosts.add(JSON.parse(res.body).host);
  }
  return hosts;
}

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      // The name is in parentheses and may hold spaces; the fields after it are plain.
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      if (fields[0] === "Z") continue; // exited, not yet reaped
      out.push({
        pid: Number(entry),
        ppid: Number(fields[1]),
        comm: stat.slice(stat.indexOf("(") + 1, close),
      });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Every process below `pid` (workerd included: its own process group, but still a child). */
function descendants(pid: number): Proc[] {
  const all = processes();
  const found: Proc[] = [];
  const parents = new Set([pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all)
      if (parents.has(p.ppid) && !parents.has(p.pid)) {
        parents.add(p.pid);
        found.push(p);
        grew = true;
      }
  }
  return found;
}

function alive(pid: number): boolean {
  return processes().some((p) => p.pid === pid);
}

/** The hosts (the parent's node children) and, per host, its workerd processes. */
function hostsOf(parent: number): Map<number, number[]> {
  const below = descendants(parent);
  const hosts = new Map<number, number[]>();
  for (const p of below) if (p.ppid === parent) hosts.set(p.pid, []);
  for (const [host] of hosts)
    hosts.set(
      host,
      descendants(host)
        .filter((p) => p.comm === "workerd")
        .map((p) => p.pid),
    );
  return hosts;
}

async function startWorkers(group = false, args: string[] = []): Promise<TestServer> {
  const server = await startServer({
    args: ["--workers", "2", ...args],
    env: { WORKERBASE_RUNTIME_PROCESSES: "1" },
    group,
  });
  // /healthz answered once one host was up; the parent says so once both are.
  await eventually(
    async () => (server.output().includes("listening on") ? true : undefined),
    30_000,
  );
  return server;
}

/** Runs `serve` to its end, for starts that must fail. */
function serveFails(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; output: string }>((resolve) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-workers-"));
    const child = spawn(process.execPath, [bin, "serve", "--data", dataDir, ...args], {
      env: { ...process.env, WORKERBASE_RUNTIME_PROCESSES: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      fs.rmSync(dataDir, { recursive: true, force: true });
      resolve({ code, output });
    });
  });
}

describe("serve --workers 2", () => {
  let server: TestServer;
  let fnId: string;
  before(async () => {
    server = await startWorkers();
  });
  after(async () => {
    await server?.stop("SIGKILL");
  });

  it("answers on one port from two hosts, each with its own workerd", async () => {
    const hosts = await hostsAnswering(server);
    assert.equal(hosts.size, 2, `only ${[...hosts]} answered`);
    const [a, b] = [...hosts].sort();
    assert.match(a, /-0$/);
    assert.match(b, /-1$/);
    assert.equal(a.slice(0, -2), b.slice(0, -2), "the hosts share the data dir's id");
    assert.equal((server.output().match(/listening on/g) ?? []).length, 1, server.output());

    const children = hostsOf(server.child.pid!);
    assert.equal(children.size, 2);
    for (const [host, workerd] of children)
      assert.ok(workerd.length >= 1, `host ${host} has no workerd of its own`);
  });

  it("a function deployed through the port is invoked by both hosts", async () => {
    const fn = await deployFunction(server, {
      name: "hello",
      code: `async function handler(request) { return new Response("hello"); }`,
    });
    assert.equal(fn.status, "deployed", JSON.stringify(fn));
    fnId = fn.id;
    const invoke = `${server.api}/functions/${fn.id}/invoke`;
    for (let i = 0; i < 40; i++) {
      const res = await fresh(invoke, { "x-api-key": server.key });
      assert.deepEqual(res, { status: 200, body: "hello" }, `invocation ${i}`);
    }
    // Each host counts the invocations it answered in its own /metrics.
    const served = new Map<string, number>();
    for (let i = 0; i < 60 && served.size < 2; i++) {
      const { body } = await fresh(`${server.url}/metrics`);
      const m = /workerbase_invocations_total\{host="([^"]+)",status="success"\} (\d+)/.exec(body);
      assert.ok(m, body);
      served.set(m[1], Number(m[2]));
    }
    assert.equal(served.size, 2);
    for (const [host, n] of served) assert.ok(n > 0, `host ${host} answered no invocation`);
  });

  it("writes through both hosts land in one project database, which one host's processes alone hold open", async () => {
    const query = (sql: string) =>
      fetch(`${server.api}/database/query`, {
        method: "POST",
        headers: {
          "x-api-key": server.key,
          "content-type": "application/json",
          connection: "close",
        },
        body: JSON.stringify({ sql }),
      });
    assert.equal((await query("create table w (n integer)")).status, 200);
    for (let i = 0; i < 20; i++)
      assert.equal((await query(`insert into w values (${i})`)).status, 200);
    const res = await query("select count(*) as n from w");
    assert.equal(((await res.json()) as any).data.results[0].n, 20);
    const dir = path.join(server.dataDir, "d1");
    const file = path.join(
      dir,
      fs.readdirSync(dir).find((f) => f.endsWith(".sqlite"))!,
    );
    // Every node process below each host (its database processes), and which hold the file.
    const holding = [...hostsOf(server.child.pid!).keys()].filter((host) =>
      descendants(host).some((p) => {
        try {
          return fs
            .readdirSync(`/proc/${p.pid}/fd`)
            .some((fd) => fs.readlinkSync(`/proc/${p.pid}/fd/${fd}`) === file);
        } catch {
          return false;
        }
      }),
    );
    assert.equal(holding.length, 1, "exactly one host's processes have the file open");
  });

  it("a key revoked through one host is refused by both within 1 s", async () => {
    const admin = { "x-admin-key": server.adminKey, "content-type": "application/json" };
    const projects = await fetch(`${server.url}/admin/v1/projects`, { headers: admin }).then((r) =>
      r.json(),
    );
    const project = projects.data.find((p: any) => p.name === "default");
    const created = await fetch(`${server.url}/admin/v1/projects/${project.id}/api_keys`, {
      method: "POST",
      headers: admin,
    }).then((r) => r.json());
    const key = created.data.api_key as string;
    // Known to both hosts, which now hold it in their caches.
    for (let i = 0; i < 20; i++)
      assert.equal((await fresh(`${server.api}/functions`, { "x-api-key": key })).status, 200);
    const revoked = await fetch(`${server.url}/admin/v1/api_keys/${created.data.id}`, {
      method: "DELETE",
      headers: admin,
    });
    assert.equal(revoked.status, 204);
    await new Promise((r) => setTimeout(r, 1000));
    for (let i = 0; i < 20; i++)
      assert.equal(
        (await fresh(`${server.api}/functions`, { "x-api-key": key })).status,
        401,
        "the revoked key still worked on a host after 1 s",
      );
  });

  it(
    // Each host keeps its workerd configs (which name its own internal port) in a folder of
    // its own: a workerd that restarts after another host wrote its config asks its own host.
    "a host whose workerd was restarted still runs its invocations",
    async () => {
      const workerd = [...hostsOf(server.child.pid!).values()].flat();
      for (const pid of workerd) process.kill(pid, "SIGKILL");
      // Both hosts run new workerd processes, and say they are ready.
      const ready = new Map<string, boolean>();
      await eventually(async () => {
        const { body } = await fresh(`${server.url}/healthz`, { "x-admin-key": server.adminKey });
        const health = JSON.parse(body);
        ready.set(
          health.host,
          health.runtime.some(
            (p: any) => p.state === "ready" && p.pid !== null && !workerd.includes(p.pid),
          ),
        );
        return ready.size === 2 && [...ready.values()].every(Boolean) ? true : undefined;
      }, 15_000);
      const failures: string[] = [];
      for (let i = 0; i < 30; i++) {
        const res = await fresh(`${server.api}/functions/${fnId}/invoke`, {
          "x-api-key": server.key,
        });
        if (res.status !== 200) failures.push(res.body);
      }
      assert.deepEqual(failures, []);
    },
  );

  it("starts a host again when one exits", async () => {
    const before = [...hostsOf(server.child.pid!).keys()];
    process.kill(before[0], "SIGKILL");
    await eventually(async () => {
      const now = [...hostsOf(server.child.pid!).keys()];
      return now.length === 2 && !now.includes(before[0]) ? true : undefined;
    }, 15_000);
    await eventually(
      async () => ((await hostsAnswering(server)).size === 2 ? true : undefined),
      15_000,
    );
    assert.match(server.output(), /worker \d exited \(signal SIGKILL\); starting it again/);
  });

  it("SIGTERM to the parent stops both hosts and their workerd, and it exits 0", async () => {
    const below = descendants(server.child.pid!);
    assert.ok(below.filter((p) => p.comm === "workerd").length >= 2);
    assert.equal(await server.stop("SIGTERM"), 0, server.output());
    assert.match(server.output(), /SIGTERM received; finishing in-flight invocations/);
    await eventually(async () => (below.every((p) => !alive(p.pid)) ? true : undefined), 5000);
    assert.deepEqual(workerdPidsFor(server.dataDir), []);
  });
});

describe("serve --workers 2 on PostgreSQL", () => {
  after(() => dropTestDatabases());

  it("migrates the empty database once, and both hosts serve a function deployed through the port", async () => {
    const database = await createTestDatabase();
    const server = await startWorkers(false, ["--database-url", database.url]);
    try {
      const stores = new Set<string>();
      const hosts = new Set<string>();
      for (let i = 0; i < 60 && hosts.size < 2; i++) {
        const { body } = await fresh(`${server.url}/healthz`);
        hosts.add(JSON.parse(body).host);
        stores.add(JSON.parse(body).store);
      }
      assert.equal(hosts.size, 2);
      assert.deepEqual([...stores], ["postgres"]);
      const fn = await deployFunction(server, {
        name: "hello-pg",
        code: `async function handler(request) { return new Response("hello"); }`,
      });
      for (let i = 0; i < 20; i++)
        assert.deepEqual(
          await fresh(`${server.api}/functions/${fn.id}/invoke`, { "x-api-key": server.key }),
          { status: 200, body: "hello" },
        );
      assert.equal(await server.stop("SIGTERM"), 0, server.output());
    } finally {
      await server.stop("SIGKILL");
    }
  });
});

describe("serve --workers 2 stopped from outside", () => {
  it("a Ctrl-C to the whole process group drains every host and the parent exits 0", async () => {
    const server = await startWorkers(true);
    const below = descendants(server.child.pid!);
    assert.equal(await server.stop("SIGINT"), 0, server.output());
    assert.equal((server.output().match(/SIGINT received/g) ?? []).length, 1, server.output());
    await eventually(async () => (below.every((p) => !alive(p.pid)) ? true : undefined), 5000);
    assert.deepEqual(workerdPidsFor(server.dataDir), []);
  });

  it("its hosts notice, stop their workerd and exit within seconds", async () => {
    const server = await startWorkers();
    const below = descendants(server.child.pid!);
    assert.ok(below.filter((p) => p.comm === "workerd").length >= 2);
    await server.stop("SIGKILL");
    await eventually(async () => (below.every((p) => !alive(p.pid)) ? true : undefined), 10_000);
    assert.deepEqual(workerdPidsFor(server.dataDir), []);
  });
});

describe("serve --workers 2 that cannot start", () => {
  it("fails with a sentence when the port is taken", async () => {
    const port = await freePort();
    const taken = net.createServer().listen(port, "127.0.0.1");
    await new Promise((r) => taken.once("listening", r));
    try {
      const { code, output } = await serveFails(["--workers", "2", "--port", String(port)]);
      assert.equal(code, 1);
      assert.match(output, new RegExp(`Port ${port} on 127.0.0.1 is already in use`));
    } finally {
      taken.close();
    }
  });

  it("fails with a sentence when the store cannot be reached", async () => {
    const port = await freePort();
    const { code, output } = await serveFails([
      "--workers",
      "2",
      "--port",
      String(port),
      "--database-url",
      `postgres://postgres@127.0.0.1:${await freePort()}/nothing`,
    ]);
    assert.equal(code, 1);
    assert.match(output, /error: .*(reach|connect)/i);
    assert.doesNotMatch(output, /listening on/);
  });

  it("lists --workers and --database-url in serve --help, and suggests them for a typo", async () => {
    const run = (args: string[]) =>
      new Promise<string>((resolve) => {
        const child = spawn(process.execPath, [bin, ...args], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        child.once("exit", () => resolve(out));
      });
    const help = await run(["serve", "--help"]);
    assert.match(help, /--workers N/);
    assert.match(help, /--database-url URL/);
    assert.match(await run(["serve", "--worker", "2"]), /--workers/);
  });
});
