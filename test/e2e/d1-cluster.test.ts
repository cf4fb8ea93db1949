// Project databases (env.DB) in a cluster: real hosts on loopback, one real PostgreSQL
// database, separate data dirs and one shared D1 folder. Each database has one owner host;
// the others forward its statements; an owner that stops hands over, one that dies is
// taken over, and no acknowledged write is lost.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { deployFunction, startServer, type TestServer } from "../helpers/server.js";
import { createTestDatabase, dropTestDatabases, type TestDatabase } from "../helpers/postgres.js";

const masterKey = crypto.randomBytes(32).toString("base64");
const apiKey = "wb_d1c_" + crypto.randomBytes(12).toString("hex");
const adminKey = "admin_" + crypto.randomBytes(12).toString("hex");
const d1Dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-d1-shared-"));
let database: TestDatabase;
let client: pg.Client;
const hosts: TestServer[] = [];

const env = () => ({
  DATABASE_URL: database.url,
  WORKERBASE_MASTER_KEY: masterKey,
  WORKERBASE_API_KEY: apiKey,
  WORKERBASE_ADMIN_KEY: adminKey,
  WORKERBASE_D1_DIR: d1Dir,
});

async function start(): Promise<TestServer> {
  const host = await startServer({ env: env() });
  hosts.push(host);
  return host;
}

async function sql(host: TestServer, text: string, params: unknown[] = []) {
  const res = await host.call("POST", "/database/query", { sql: text, params });
  return { status: res.status, body: (await res.json()) as any };
}

async function hostId(host: TestServer): Promise<string> {
  return ((await fetch(`${host.url}/healthz`).then((r) => r.json())) as any).host;
}

async function owner(): Promise<{ host_id: string; address: string } | undefined> {
  const { rows } = await client.query("select host_id, address from database_owners");
  return rows[0];
}

/** Host pids (of its database processes) that hold `file` open. */
async function holders(host: TestServer, file: string): Promise<number[]> {
  const { databases } = await host.health();
  return (databases.pids as number[]).filter((pid) => {
    try {
      return fs
        .readdirSync(`/proc/${pid}/fd`)
        .some((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === file);
    } catch {
      return false;
    }
  });
}

before(async () => {
  database = await createTestDatabase();
  client = new pg.Client({ connectionString: database.url });
  await client.connect();
  await Promise.all([start(), start()]);
});

after(async () => {
  await Promise.all(hosts.map((h) => h.stop()));
  await client.end();
  await dropTestDatabases();
  fs.rmSync(d1Dir, { recursive: true, force: true });
});

describe("a project database in a cluster", () => {
  let acknowledged = 0;
  let projectFile = "";

  it("writes through two hosts, from functions and the data API, land in one database", async () => {
    const [a, b] = hosts as [TestServer, TestServer];
    assert.equal((await sql(a, "create table t (n integer, via text)")).status, 200);
    const fn = await deployFunction(b, {
      name: "writer",
      code: `async function handler(request, env) {
  const via = new URL(request.url).searchParams.get("via");
  await env.DB.prepare("insert into t (n, via) values (?, ?)").bind(Date.now(), via).run();
  const { n } = await env.DB.prepare("select count(*) as n from t").first();
  return Response.json({ n });
}`,
    });
    for (let i = 0; i < 10; i++) {
      const host = i % 2 ? a : b;
      const res = await fetch(`${host.api}/functions/${fn.id}/invoke?via=fn`, {
        headers: { "x-api-key": apiKey },
      });
      assert.equal(res.status, 200, await res.clone().text());
      acknowledged++;
      assert.equal(((await res.json()) as any).n, acknowledged);
    }
    for (let i = 0; i < 10; i++) {
      const res = await sql(i % 2 ? a : b, "insert into t (n, via) values (?, 'api')", [i]);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      acknowledged++;
    }
    for (const host of [a, b]) {
      const { body } = await sql(host, "select count(*) as n from t");
      assert.equal(body.data.results[0].n, acknowledged);
    }
    const files = fs.readdirSync(d1Dir).filter((f) => f.endsWith(".sqlite"));
    assert.equal(files.length, 1, "one database file in the shared folder");
    projectFile = path.join(d1Dir, files[0]!);
  });

  it("only the owner's database processes hold the file open", async () => {
    const [a, b] = hosts as [TestServer, TestServer];
    const lease = await owner();
    assert.ok(lease, "a lease is recorded in the store");
    const [ida, idb] = [await hostId(a), await hostId(b)];
    assert.ok(lease.host_id === ida || lease.host_id === idb);
    const [ofA, ofB] = [await holders(a, projectFile), await holders(b, projectFile)];
    if (lease.host_id === ida) {
      assert.ok(ofA.length > 0, "the owner has the file open");
      assert.deepEqual(ofB, []);
    } else {
      assert.ok(ofB.length > 0, "the owner has the file open");
      assert.deepEqual(ofA, []);
    }
  });

  it("a peer on the cluster channel without the cluster's key is cut off, and runs nothing", async () => {
    const lease = (await owner())!;
    const [, projectId] = /([0-9a-f-]{36})\.sqlite$/.exec(projectFile)!;
    const [host, port] = [
      lease.address.replace(/:\d+$/, ""),
      Number(/:(\d+)$/.exec(lease.address)![1]),
    ];
    const request = JSON.stringify({
      projectId,
      op: { op: "statements", sql: "insert into t (n, via) values (0, 'forged')", params: [] },
      timeoutMs: 1000,
    });
    const body = Buffer.from(request);
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.writeUInt32BE(1, 4);
    const attempts: Buffer[] = [
      // An HTTP request, as a client that found the port would send.
      Buffer.from(
        `POST /d1 HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\n\r\n${request}`,
      ),
      // A well-formed opening with a MAC made without the key, then a request frame.
      Buffer.concat([crypto.randomBytes(64), head, body]),
      // A request frame straight away.
      Buffer.concat([head, body, crypto.randomBytes(64)]),
    ];
    for (const bytes of attempts) {
      const received = await new Promise<Buffer>((resolve, reject) => {
        const socket = net.connect(port, host);
        const chunks: Buffer[] = [];
        socket.on("data", (c) => chunks.push(c));
        socket.once("connect", () => socket.write(bytes));
        socket.once("close", () => resolve(Buffer.concat(chunks)));
        socket.once("error", reject);
        setTimeout(() => socket.destroy(), 8000);
      });
      // Only the server's opening nonce ever comes back: no answer to anything sent.
      assert.equal(received.length, 32, `got ${received.length} bytes back`);
    }
    const { body: counted } = await sql(
      hosts[0]!,
      "select count(*) as n from t where via = 'forged'",
    );
    assert.equal(counted.data.results[0].n, 0);
  });

  it("an export through one host imports into another project through the other; a failing import changes nothing", async () => {
    const [a, b] = hosts as [TestServer, TestServer];
    const exported = await a.call("GET", "/database/export");
    assert.equal(exported.status, 200);
    const text = await exported.text();
    assert.match(text, /INSERT INTO/i);
    const projects = await fetch(`${a.url}/admin/v1/projects`, {
      method: "POST",
      headers: { "x-admin-key": adminKey, "content-type": "application/json" },
      body: JSON.stringify({ project: { name: "copy" } }),
    }).then((r) => r.json());
    const copyKey = (projects as any).data.api_key as string;
    const load = (sqlText: string) =>
      b.call("POST", "/database/import", sqlText, {
        "x-api-key": copyKey,
        "content-type": "application/sql",
      });
    const failing = await load(text + "\nINSERT INTO nowhere VALUES (1);");
    assert.equal(failing.status, 400);
    const empty = await b.call(
      "POST",
      "/database/query",
      { sql: "select count(*) as n from sqlite_master where name = 't'" },
      { "x-api-key": copyKey },
    );
    assert.equal(
      ((await empty.json()) as any).data.results[0].n,
      0,
      "the failed import left nothing",
    );
    const imported = await load(text);
    assert.equal(imported.status, 200, await imported.clone().text());
    const copied = await a.call(
      "POST",
      "/database/query",
      { sql: "select count(*) as n from t" },
      { "x-api-key": copyKey },
    );
    assert.equal(((await copied.json()) as any).data.results[0].n, acknowledged);
  });

  it("SIGTERM of the owner: the other host serves the next statement within 2 s, with every row", async () => {
    const lease = (await owner())!;
    const ids = await Promise.all(hosts.map(hostId));
    const ownerHost = hosts[ids.indexOf(lease.host_id)]!;
    const other = hosts.find((h) => h !== ownerHost)!;
    assert.equal(await ownerHost.stop("SIGTERM"), 0);
    hosts.splice(hosts.indexOf(ownerHost), 1);
    const started = Date.now();
    const res = await sql(other, "insert into t (n, via) values (1, 'after-handover')");
    const took = Date.now() - started;
    assert.equal(res.status, 200, JSON.stringify(res.body));
    acknowledged++;
    assert.ok(took < 2000, `the next statement took ${took} ms`);
    const { body } = await sql(other, "select count(*) as n from t");
    assert.equal(body.data.results[0].n, acknowledged);
    assert.equal((await owner())?.host_id, await hostId(other));
  });

  it("SIGKILL of the owner: a third host takes over within 20 s, with every acknowledged row", async () => {
    const survivor = hosts[0]!; // the owner now
    const third = await start();
    // Writes through the third host are forwarded to the owner.
    for (let i = 0; i < 20; i++) {
      const res = await sql(
        i % 2 ? third : survivor,
        "insert into t (n, via) values (?, 'pre-kill')",
        [i],
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      acknowledged++;
    }
    assert.deepEqual(await holders(third, projectFile), []);
    await survivor.stop("SIGKILL");
    hosts.splice(hosts.indexOf(survivor), 1);
    const killedAt = Date.now();
    let res = await sql(third, "insert into t (n, via) values (2, 'after-takeover')");
    while (res.status !== 200 && Date.now() - killedAt < 25_000) {
      await new Promise((r) => setTimeout(r, 250));
      res = await sql(third, "insert into t (n, via) values (2, 'after-takeover')");
    }
    const took = Date.now() - killedAt;
    assert.equal(res.status, 200, JSON.stringify(res.body));
    acknowledged++;
    assert.ok(took < 20_000, `the takeover took ${took} ms`);
    const { body } = await sql(third, "select count(*) as n from t");
    assert.equal(body.data.results[0].n, acknowledged);
    assert.ok((await holders(third, projectFile)).length > 0);
  });
});
