// Two real hosts on loopback against one real PostgreSQL database, each with its own data dir:
// what one host changes holds on the other, work claimed by a host that dies is finished by
// the other, and a lost database is a 503 the host recovers from by itself.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import http from "node:http";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { deployFunction, eventually, startServer, type TestServer } from "../helpers/server.js";
import { createTestDatabase, dropTestDatabases, type TestDatabase } from "../helpers/postgres.js";

const masterKey = crypto.randomBytes(32).toString("base64");
const apiKey = "wb_cluster_" + crypto.randomBytes(12).toString("hex");
const adminKey = "admin_" + crypto.randomBytes(12).toString("hex");
let database: TestDatabase;
let a: TestServer;
let b: TestServer;
const extra: TestServer[] = [];

function env(url = database.url): Record<string, string> {
  return {
    DATABASE_URL: url,
    WORKERBASE_MASTER_KEY: masterKey,
    WORKERBASE_API_KEY: apiKey,
    WORKERBASE_ADMIN_KEY: adminKey,
    WORKERBASE_WEBHOOK_RETRY_DELAYS: "2",
  };
}

async function invoke(server: TestServer, id: string, key = apiKey) {
  const res = await fetch(`${server.api}/functions/${id}/invoke`, {
    method: "POST",
    headers: { "x-api-key": key },
    body: "{}",
  });
  return { status: res.status, text: await res.text() };
}

before(async () => {
  database = await createTestDatabase();
  // Started together on an empty database: both migrate-or-wait and come up.
  [a, b] = await Promise.all([startServer({ env: env() }), startServer({ env: env() })]);
});

after(async () => {
  await Promise.all([a, b, ...extra].map((s) => s?.stop()));
  await dropTestDatabases();
});

describe("two hosts on one PostgreSQL database", () => {
  it("both came up on an empty database and say which host and store they are", async () => {
    const [ha, hb] = await Promise.all([
      fetch(`${a.url}/healthz`).then((r) => r.json()),
      fetch(`${b.url}/healthz`).then((r) => r.json()),
    ]);
    assert.equal(ha.ok, true);
    assert.equal(ha.store, "postgres");
    assert.equal(hb.store, "postgres");
    assert.notEqual(ha.host, hb.host);
    const metrics = await fetch(`${b.url}/metrics`).then((r) => r.text());
    assert.match(metrics, new RegExp(`workerbase_host_resident_bytes\\{host="${hb.host}"\\}`));
    const projects = await fetch(`${a.url}/admin/v1/projects`, {
      headers: { "x-admin-key": adminKey },
    }).then((r) => r.json());
    assert.equal(projects.data.filter((p: any) => p.name === "default").length, 1);
  });

  it("a function deployed on one host is invoked on the other, and a redeploy holds there within 1 s", async () => {
    const fn = await deployFunction(a, {
      name: "where",
      code: `async function handler(request, env) { return new Response("v1 " + env.GREETING); }`,
    });
    const secret = await a.call("POST", `/functions/${fn.id}/secrets`, {
      secret: { name: "GREETING", value: "hello" },
    });
    assert.equal(secret.status, 201, await secret.text());
    assert.deepEqual(await invoke(b, fn.id), { status: 200, text: "v1 hello" });

    const updated = await a.call("PATCH", `/functions/${fn.id}`, {
      function: {
        code: `async function handler(request, env) { return new Response("v2 " + env.GREETING); }`,
      },
    });
    assert.equal(updated.status, 200);
    const deployed = await a.call("POST", `/functions/${fn.id}/deploy`);
    assert.equal(deployed.status, 202);
    await eventually(async () => {
      const res = await a.call("GET", `/functions/${fn.id}`);
      const { data } = (await res.json()) as any;
      return data.status === "deployed" && data.version === 2 ? true : undefined;
    }, 30_000);
    const deadline = Date.now() + 1000;
    let seen = await invoke(b, fn.id);
    while (seen.text !== "v2 hello" && Date.now() < deadline) seen = await invoke(b, fn.id);
    assert.deepEqual(seen, { status: 200, text: "v2 hello" });

    const removed = await a.call("DELETE", `/functions/${fn.id}/secrets/GREETING`);
    assert.equal(removed.status, 204);
    const until = Date.now() + 1000;
    seen = await invoke(b, fn.id);
    while (seen.text !== "v2 undefined" && Date.now() < until) seen = await invoke(b, fn.id);
    assert.deepEqual(seen, { status: 200, text: "v2 undefined" });
  });

  it("a key revoked on one host is refused on the other within 1 s", async () => {
    const projects = await fetch(`${a.url}/admin/v1/projects`, {
      headers: { "x-admin-key": adminKey },
    }).then((r) => r.json());
    const project = projects.data.find((p: any) => p.name === "default");
    const created = await fetch(`${a.url}/admin/v1/projects/${project.id}/api_keys`, {
      method: "POST",
      headers: { "x-admin-key": adminKey },
    }).then((r) => r.json());
    const key = created.data.api_key;
    const list = () => b.call("GET", "/functions", undefined, { "x-api-key": key });
    assert.equal((await list()).status, 200); // now cached on b
    const revoked = await fetch(`${a.url}/admin/v1/api_keys/${created.data.id}`, {
      method: "DELETE",
      headers: { "x-admin-key": adminKey },
    });
    assert.equal(revoked.status, 204);
    const start = Date.now();
    let status = (await list()).status;
    while (status === 200 && Date.now() - start < 1000) status = (await list()).status;
    assert.equal(status, 401, "the revoked key still worked on the other host after 1 s");
  });

  it("100 invocations spread over both hosts are all recorded", async () => {
    const fn = await deployFunction(b, {
      name: "counted",
      code: `async function handler(request) { return new Response("ok"); }`,
    });
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => invoke(i % 2 ? a : b, fn.id)),
    );
    assert.ok(results.every((r) => r.status === 200));
    const records = await eventually(async () => {
      const res = await a.call("GET", `/functions/${fn.id}/invocations?limit=100`);
      const { data } = (await res.json()) as any;
      return data.length === 100 ? data : undefined;
    }, 10_000);
    assert.equal(new Set(records.map((r: any) => r.id)).size, 100);
  });

  it("a host whose master key differs from the cluster's refuses to start, in a sentence", async () => {
    await assert.rejects(
      startServer({
        env: { ...env(), WORKERBASE_MASTER_KEY: crypto.randomBytes(32).toString("base64") },
      }),
      /WORKERBASE_MASTER_KEY does not match the key this cluster's secrets are sealed with/,
    );
  });

  it("a DATABASE_URL that cannot be reached fails the start with one sentence", async () => {
    await assert.rejects(
      startServer({ env: env("postgres://postgres@127.0.0.1:1/nothing") }),
      /Cannot connect to PostgreSQL at 127\.0\.0\.1:1\/nothing: the connection was refused/,
    );
  });

  it("a lost database makes /healthz and the API answer 503, and the host recovers by itself", async () => {
    const target = new URL(database.url);
    const proxy = await startProxy(Number(target.port || 5432));
    const viaProxy = new URL(database.url);
    viaProxy.port = String(proxy.port);
    const c = await startServer({ env: env(viaProxy.toString()) });
    extra.push(c);
    assert.equal((await c.call("GET", "/functions")).status, 200);

    await proxy.cut();
    const health = await eventually(async () => {
      const res = await fetch(`${c.url}/healthz`);
      return res.status === 503 ? res.json() : undefined;
    }, 15_000);
    assert.equal(health.ok, false);
    const refused = await c.call("GET", "/functions");
    assert.equal(refused.status, 503);
    assert.match(((await refused.json()) as any).error, /database cannot be reached/);

    await proxy.restore();
    await eventually(async () => {
      const res = await fetch(`${c.url}/healthz`);
      return res.status === 200 ? true : undefined;
    }, 20_000);
    assert.equal((await c.call("GET", "/functions")).status, 200);
    await c.stop();
    await proxy.close();
  });

  // Last: it kills one of the two hosts.
  it("a delivery whose first attempt failed is retried by the other host after the first is SIGKILLed, once, with the same key", async () => {
    const hits: Array<{ key: string; at: number }> = [];
    const receiver = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        hits.push({ key: String(req.headers["x-idempotency-key"]), at: Date.now() });
        // The first attempt fails slowly, so the test can see which host holds it.
        if (hits.length === 1) setTimeout(() => res.writeHead(500).end("no"), 800);
        else res.writeHead(200).end("ok");
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
    const port = (receiver.address() as net.AddressInfo).port;
    const sub = await a.call("POST", "/webhooks", {
      webhook: { url: `http://127.0.0.1:${port}/hook`, events: ["whatsapp.message.received"] },
    });
    assert.equal(sub.status, 201, await sub.text());
    const sent = await a.call("POST", "/whatsapp/simulate", {
      phone_number: "+15550001111",
      text: "hello",
    });
    assert.equal(sent.status, 202, await sent.text());

    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    let done: any;
    let other: TestServer;
    try {
      const owner = await eventually(async () => {
        const { rows } = await client.query(
          "select lease_owner from webhook_deliveries where lease_owner is not null",
        );
        return rows[0]?.lease_owner as string | undefined;
      }, 10_000);
      const ids = {
        a: ((await fetch(`${a.url}/healthz`).then((r) => r.json())) as any).host,
        b: ((await fetch(`${b.url}/healthz`).then((r) => r.json())) as any).host,
      };
      assert.ok(owner === ids.a || owner === ids.b, `owner ${owner} is neither host`);
      const first = owner === ids.a ? a : b;
      other = owner === ids.a ? b : a;
      await eventually(async () => {
        const { rows } = await client.query("select attempts from webhook_deliveries");
        return rows[0]?.attempts === 1 ? true : undefined;
      }, 10_000);
      await first.stop("SIGKILL");

      done = await eventually(async () => {
        const { rows } = await client.query(
          "select status, attempts, id, lease_owner from webhook_deliveries",
        );
        return rows[0]?.status === "delivered" ? rows[0] : undefined;
      }, 15_000);
      // Time for a wrongful third attempt to show.
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      await client.end();
      receiver.close();
      receiver.closeAllConnections();
    }
    assert.equal(hits.length, 2);
    assert.equal(hits[0]!.key, hits[1]!.key);
    assert.equal(hits[0]!.key, done.id);
    assert.equal(done.attempts, 2);
    const listed = await other!.call("GET", "/webhook_deliveries");
    const { data } = (await listed.json()) as any;
    assert.equal(data[0].status, "delivered");
  });
});

/** A TCP proxy to the database that the test can cut and restore, as a network would. */
async function startProxy(targetPort: number) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const open = () =>
    new Promise<void>((resolve) => {
      server = net.createServer((inbound) => {
        const outbound = net.connect(targetPort, "127.0.0.1");
        sockets.add(inbound).add(outbound);
        inbound.pipe(outbound).pipe(inbound);
        const end = () => {
          inbound.destroy();
          outbound.destroy();
          sockets.delete(inbound);
          sockets.delete(outbound);
        };
        inbound.on("error", end).on("close", end);
        outbound.on("error", end).on("close", end);
      });
      server.listen(port, "127.0.0.1", () => {
        port = (server!.address() as net.AddressInfo).port;
        resolve();
      });
    });
  const cut = async () => {
    if (!server?.listening) return;
    const closed = new Promise<void>((r) => server!.close(() => r()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  await open();
  return {
    get port() {
      return port;
    },
    cut,
    restore: open,
    close: cut,
  };
}
