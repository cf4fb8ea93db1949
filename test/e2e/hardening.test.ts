// Issue 12: bounds and defaults that keep a host safe to run (JSON depth, key length and
// guessing, file modes, what /healthz shows, function count, start-up, child environments,
// socket folders left by a killed host).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
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

const hello = `async function handler() { return new Response("hello"); }`;

/** Runs `workerbase serve` to its exit (it should exit by itself, quickly). */
function serveUntilExit(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<{ code: number | null; out: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [bin, "serve", ...args], {
    env: { ...process.env, WORKERBASE_RUNTIME_PROCESSES: "2", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  return new Promise((resolve) =>
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - started });
    }),
  );
}

function freshDir(): string {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), "wb-hard-"));
  after(() => fs.rmSync(parent, { recursive: true, force: true }));
  return path.join(parent, "data");
}

function environ(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
}

describe("JSON nesting", () => {
  let server: TestServer;
  before(async () => (server = await startServer()));
  after(() => server.stop());

  it("a body nested 1000 levels deep is a 400 naming where, and a later normal save still works", async () => {
    const deep = '{"type":"object","properties":{"a":'.repeat(1000) + "{}" + "}}".repeat(1000);
    const res = await server.call(
      "POST",
      "/functions",
      `{"function":{"name":"deep","code":${JSON.stringify(hello)},"tool":{"name":"t","description":"d","input_schema":${deep}}}}`,
    );
    assert.equal(res.status, 400);
    const body = (await res.json()) as any;
    assert.match(
      body.error,
      /^Invalid function\.tool\.input_schema\.properties\.a…: JSON nested deeper than 64 levels$/,
    );
    assert.equal(body.details[0].field, "function.tool.input_schema.properties.a…");

    const arrays = "[".repeat(100_000) + "]".repeat(100_000);
    for (const [route, text] of [
      ["/secrets", `{"secret":{"name":"DEEP","type":"json","value":${arrays}}}`],
      ["/database/query", `{"sql":"SELECT 1","params":${arrays}}`],
      ["/workflows", `{"workflow":${arrays}}`],
    ]) {
      const answer = await server.call("POST", route, text);
      assert.equal(answer.status, 400, route);
      assert.match(((await answer.json()) as any).error, /nested deeper than 64 levels/, route);
    }

    // 64 levels are fine: {"function":{"tool":{"input_schema": ...61 more}}}.
    const fits = '{"type":"object","properties":{"a":'.repeat(30) + "{}" + "}}".repeat(30);
    const ok = await server.call(
      "POST",
      "/functions",
      `{"function":{"name":"fits","code":${JSON.stringify(hello)},"tool":{"name":"fits","description":"d","input_schema":${fits}}}}`,
    );
    assert.equal(ok.status, 201, await ok.clone().text());
    const normal = await server.call("POST", "/functions", {
      function: { name: "normal", code: hello },
    });
    assert.equal(normal.status, 201);
    assert.ok(!server.output().includes("failed:"), server.output());
  });
});

describe("agent tool arguments", () => {
  it("arguments nested deeper than 64 levels are a tool error naming where", async () => {
    const server = await startServer();
    try {
      await deployFunction(server, {
        name: "tool",
        code: hello,
        tool: { name: "deep_args", description: "d", input_schema: { type: "object" } },
      });
      const deep = "[".repeat(100_000) + "]".repeat(100_000);
      const res = await fetch(`${server.url}/mcp`, {
        method: "POST",
        headers: {
          "x-api-key": server.key,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        },
        body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deep_args","arguments":{"a":${deep}}}}`,
      });
      assert.equal(res.status, 200);
      const { result } = (await res.json()) as any;
      assert.equal(result.isError, true);
      assert.equal(
        result.content[0].text,
        "Invalid arguments: a.0.0.0.0… is nested deeper than 64 levels",
      );
    } finally {
      await server.stop();
    }
  });
});

describe("client aborts", () => {
  it("a client that closes mid-request is logged in one line, not as a stack trace", async () => {
    const server = await startServer();
    try {
      const fn = await deployFunction(server, { name: "aborted", code: hello });
      const port = Number(new URL(server.url).port);
      const paths = ["/platform/v1/functions", `/platform/v1/functions/${fn.id}/invoke`];
      for (const route of paths) {
        await new Promise<void>((resolve) => {
          const socket = net.connect(port, "127.0.0.1", () => {
            socket.write(
              `POST ${route} HTTP/1.1\r\nhost: x\r\nx-api-key: ${server.key}\r\n` +
                `content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"fun`,
            );
            setTimeout(() => (socket.destroy(), resolve()), 200);
          });
        });
      }
      const lines = await eventually(async () => {
        const found = server
          .output()
          .split("\n")
          .filter((l) => l.includes("closed the connection"));
        return found.length === 2 ? found : undefined;
      });
      assert.match(
        lines[0],
        /POST \/platform\/v1\/functions: the client closed the connection before the answer \(aborted\)$/,
      );
      assert.match(
        lines[1],
        /\/invoke \(invoke\): the client closed the connection before the answer \(aborted\)$/,
      );
      assert.doesNotMatch(server.output(), /^\s+at /m);
    } finally {
      await server.stop();
    }
  });
});

describe("operator-set keys", () => {
  for (const name of ["WORKERBASE_API_KEY", "WORKERBASE_ADMIN_KEY"]) {
    it(`a ${name} shorter than 16 characters stops the start with a sentence`, async () => {
      const dataDir = freshDir();
      const port = await freePort();
      const run = await serveUntilExit(["--port", String(port), "--data", dataDir], {
        WORKERBASE_API_KEY: "wb_0123456789abcdef",
        [name]: "short-key-15chr",
      });
      assert.equal(run.code, 1, run.out);
      assert.match(
        run.out,
        new RegExp(`${name} is 15 characters long; a key you set must be at least 16 characters`),
      );
      assert.ok(!run.out.includes("short-key-15chr"), "the key itself is not printed");
      assert.equal(fs.existsSync(dataDir), false);
    });
  }
});

describe("failed key attempts", () => {
  let server: TestServer;
  let privateFn: any;
  let publicFn: any;
  before(async () => {
    server = await startServer();
    privateFn = await deployFunction(server, { name: "private", code: hello });
    publicFn = await deployFunction(server, { name: "open", code: hello, public_endpoint: true });
  });
  after(() => server.stop());

  it("past 100 wrong keys a minute an address gets 429 with a sentence, while a private invoke still answers 404", async () => {
    for (let i = 0; i < 100; i++) {
      const wrong = await fetch(`${server.api}/functions`, {
        headers: { "x-api-key": `wb_wrong_${i}_0123456789` },
      });
      assert.equal(wrong.status, 401);
    }
    // Past the bound even the right key is refused: it must not tell a guesser it found one.
    const refused = await server.call("GET", "/functions");
    assert.equal(refused.status, 429);
    assert.match(
      ((await refused.json()) as any).error,
      /^Too many wrong keys from this address \(more than 100 in a minute\); retry in \d+ s$/,
    );
    assert.ok(Number(refused.headers.get("retry-after")) > 0);
    const admin = await fetch(`${server.url}/admin/v1/projects`, {
      headers: { "x-admin-key": server.adminKey },
    });
    assert.equal(admin.status, 429);
    const mcp = await fetch(`${server.url}/mcp`, {
      method: "POST",
      headers: { "x-api-key": server.key, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(mcp.status, 429);

    const invokePrivate = await fetch(`${server.api}/functions/${privateFn.id}/invoke`, {
      headers: { "x-api-key": server.key },
    });
    assert.equal(invokePrivate.status, 404);
    assert.deepEqual(await invokePrivate.json(), { error: "Function not found" });
    const invokePublic = await fetch(`${server.api}/functions/${publicFn.id}/invoke`, {
      headers: { "x-api-key": server.key },
    });
    assert.equal(invokePublic.status, 200);
    assert.equal(await invokePublic.text(), "hello");
    // Without a key nothing is looked up, so /healthz still answers its summary.
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  });
});

describe("files and folders of the data dir", () => {
  it("a pre-existing 0755 data dir becomes 0700 with a warning, and store files are 0600", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-test-modes-"));
    fs.chmodSync(dataDir, 0o755);
    const server = await startServer({ dataDir });
    try {
      assert.equal(fs.statSync(dataDir).mode & 0o777, 0o700);
      assert.match(
        server.output(),
        new RegExp(
          `warning: the data dir ${dataDir} was 0755, open to other users; it is now 0700`,
        ),
      );
      // A project database, made by a database child process.
      const query = await server.call("POST", "/database/query", { sql: "CREATE TABLE t (a)" });
      assert.equal(query.status, 200);
      const files: string[] = [];
      const walk = (dir: string) => {
        for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
          const full = path.join(dir, e.name);
          if (e.isDirectory()) {
            assert.equal(fs.statSync(full).mode & 0o777, 0o700, full);
            walk(full);
          } else files.push(full);
        }
      };
      walk(dataDir);
      for (const name of ["workerbase.db", "workerbase.db-wal", "workerbase.db-shm", "master.key"])
        assert.ok(files.includes(path.join(dataDir, name)), `${name} exists`);
      assert.ok(
        files.some((f) => f.endsWith(".sqlite")),
        "a project database exists",
      );
      for (const file of files) {
        // Copies of Workerbase's own worker scripts keep their mode (they hold nothing secret).
        if (file.startsWith(path.join(dataDir, "runtime")) && !file.endsWith(".capnp")) continue;
        assert.equal(fs.statSync(file).mode & 0o777, 0o600, file);
      }
    } finally {
      await server.stop();
    }
    // A restart on a private dir warns no more.
    const again = await startServer({ dataDir, env: { WORKERBASE_API_KEY: server.key } });
    await again.stop();
    assert.ok(!again.output().includes("warning: the data dir"), again.output());
  });
});

describe("/healthz and /metrics", () => {
  let server: TestServer;
  before(async () => (server = await startServer()));
  after(() => server.stop());

  it("without the admin key /healthz answers only ok, host and store", async () => {
    const res = await fetch(`${server.url}/healthz`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as any;
    assert.deepEqual(Object.keys(body).sort(), ["host", "ok", "store"]);
    assert.equal(body.ok, true);
    assert.equal(body.store, "sqlite");
    assert.equal(body.host, fs.readFileSync(path.join(server.dataDir, "host-id"), "utf8").trim());
  });

  it("with the admin key it shows processes, pids and memory; a wrong key is a 401", async () => {
    const details = await server.health();
    assert.equal(details.ok, true);
    assert.equal(details.runtime.length, 2);
    assert.ok(details.runtime.every((p: any) => p.pid > 0 && p.rss_bytes > 0));
    assert.equal(details.databases.pids.length, 2);
    const wrong = await fetch(`${server.url}/healthz`, {
      headers: { "x-admin-key": "admin_wrong_0123456789" },
    });
    assert.equal(wrong.status, 401);
  });

  it("/metrics on loopback needs no key", async () => {
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /workerbase_/);
  });

  it("/metrics needs the admin key when the host listens beyond loopback", async () => {
    const wide = await startServer({ args: ["--host", "0.0.0.0"] });
    try {
      assert.equal((await fetch(`${wide.url}/metrics`)).status, 401);
      const withHeader = await fetch(`${wide.url}/metrics`, {
        headers: { "x-admin-key": wide.adminKey },
      });
      assert.equal(withHeader.status, 200);
      const withBearer = await fetch(`${wide.url}/metrics`, {
        headers: { authorization: `Bearer ${wide.adminKey}` },
      });
      assert.equal(withBearer.status, 200);
    } finally {
      await wide.stop();
    }
  });
});

describe("functions per project", () => {
  it("the 1001st function of a project is a 409 with a sentence", async () => {
    const server = await startServer();
    try {
      const create = async (i: number) => {
        const res = await server.call("POST", "/functions", {
          function: { name: `fn ${i}`, code: hello },
        });
        assert.equal(res.status, 201);
      };
      // Concurrently while well below the bound (concurrent creates may pass it by a few).
      for (let i = 0; i < 990; i += 10)
        await Promise.all(Array.from({ length: 10 }, (_, j) => create(i + j)));
      for (let i = 990; i < 1000; i++) await create(i);
      const res = await server.call("POST", "/functions", {
        function: { name: "one too many", code: hello },
      });
      assert.equal(res.status, 409);
      assert.deepEqual(await res.json(), {
        error: "This project already has 1000 functions, the most it may have; delete one first",
      });
    } finally {
      await server.stop();
    }
  });
});

describe("start-up", () => {
  it("on a busy port serve exits at once with a sentence and a hint, creating nothing", async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const dataDir = freshDir();
      const before = workerdPidsFor(dataDir).length;
      const run = await serveUntilExit(["--port", String(port), "--data", dataDir], {
        WORKERBASE_API_KEY: undefined,
      });
      assert.equal(run.code, 1, run.out);
      assert.ok(run.ms < 5000, `exited after ${run.ms} ms`);
      assert.match(
        run.out,
        new RegExp(
          `Port ${port} on 127\\.0\\.0\\.1 is already in use \\(EADDRINUSE\\): stop what is listening there, or pick another port, e\\.g\\. --port ${port + 1}`,
        ),
      );
      assert.ok(!/API key/.test(run.out), "no key was created or printed");
      assert.equal(fs.existsSync(dataDir), false);
      assert.equal(workerdPidsFor(dataDir).length, before);
    } finally {
      busy.close();
    }
  });
});

describe("child processes", () => {
  it("workerd and database processes get none of the host's keys in their environment", async () => {
    const masterKey = Buffer.alloc(32, 7).toString("base64");
    const server = await startServer({ env: { WORKERBASE_MASTER_KEY: masterKey } });
    try {
      const details = await server.health();
      const pids = [
        ...details.runtime.map((p: any) => p.pid as number),
        ...(details.databases.pids as number[]),
      ];
      assert.equal(pids.length, 4);
      for (const pid of pids) {
        const env = environ(pid);
        assert.ok(
          env.some((v) => v.startsWith("PATH=")),
          `${pid} has PATH`,
        );
        const names = env.map((v) => v.split("=")[0]);
        for (const secret of [
          "WORKERBASE_API_KEY",
          "WORKERBASE_ADMIN_KEY",
          "WORKERBASE_MASTER_KEY",
          "WORKERBASE_ALLOW_PRIVATE_NETWORK",
        ])
          assert.ok(!names.includes(secret), `${pid} sees ${secret}`);
        const all = env.join("\n");
        for (const value of [server.key, server.adminKey, masterKey])
          assert.ok(!all.includes(value), `${pid} sees a key's value`);
      }
    } finally {
      await server.stop();
    }
  });

  it("socket folders left by a killed host are removed at the next start; a live host's stay", async () => {
    const dead = spawnSync("true").pid!;
    const stale = fs.mkdtempSync(path.join(os.tmpdir(), "wb-rt-"));
    fs.writeFileSync(path.join(stale, "host.pid"), `${dead}\n`);
    const live = fs.mkdtempSync(path.join(os.tmpdir(), "wb-rt-"));
    fs.writeFileSync(path.join(live, "host.pid"), `${process.pid}\n`);
    after(() => fs.rmSync(live, { recursive: true, force: true }));

    const server = await startServer();
    try {
      assert.equal(fs.existsSync(stale), false);
      assert.equal(fs.existsSync(live), true);
      // The host's own folders carry its pid.
      const own = fs
        .readdirSync(os.tmpdir())
        .filter((n) => n.startsWith("wb-rt-"))
        .map((n) => path.join(os.tmpdir(), n, "host.pid"))
        .filter(
          (f) => fs.existsSync(f) && fs.readFileSync(f, "utf8").trim() === String(server.child.pid),
        );
      assert.equal(own.length, 2);
      await server.stop("SIGKILL");
      for (const f of own) assert.ok(fs.existsSync(f), "a SIGKILLed host cannot remove them");
      const next = await startServer({
        dataDir: server.dataDir,
        env: { WORKERBASE_API_KEY: server.key },
      });
      await next.stop();
      for (const f of own) assert.equal(fs.existsSync(path.dirname(f)), false);
    } finally {
      if (server.child.exitCode === null && server.child.signalCode === null) await server.stop();
    }
  });
});
