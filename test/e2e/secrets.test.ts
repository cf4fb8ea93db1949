import crypto from "node:crypto";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { deployFunction, startServer, type TestServer } from "../helpers/server.js";

const reader = `async function handler(request, env) {
  const names = new URL(request.url).searchParams.get("names").split(",");
  return Response.json(Object.fromEntries(names.map((n) => [n, env[n] ?? null])));
}`;

let server: TestServer;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

async function read(fnId: string, names: string[], key = server.key) {
  const res = await fetch(`${server.api}/functions/${fnId}/invoke?names=${names.join(",")}`, {
    headers: { "x-api-key": key },
  });
  assert.equal(res.status, 200);
  return res.json() as Promise<Record<string, string | null>>;
}

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(full) : e.isFile() ? [full] : [];
  });
}

describe("secrets", () => {
  it("reach the function as env values, set before the first deploy, and changes apply without a redeploy", async () => {
    const created = await server.call("POST", "/functions", {
      function: { name: "reader", code: reader },
    });
    const fn = ((await created.json()) as any).data;
    const set = await server.call("POST", `/functions/${fn.id}/secrets`, {
      secret: { name: "API_TOKEN", value: "tok-one-8c1f" },
    });
    assert.equal(set.status, 201);
    const setBody = (await set.json()) as any;
    assert.deepEqual(Object.keys(setBody.data).sort(), ["created_at", "name", "type"]);
    assert.equal(setBody.data.type, "text");
    await server.call("POST", `/functions/${fn.id}/deploy`);
    await new Promise((r) => setTimeout(r, 300));
    const deployed = await deployFunction(server, { name: "reader-2", code: reader });
    assert.deepEqual(await read(fn.id, ["API_TOKEN"]), { API_TOKEN: "tok-one-8c1f" });

    await server.call("POST", `/functions/${fn.id}/secrets`, {
      secret: { name: "API_TOKEN", value: "tok-two-77aa" },
    });
    await server.call("POST", `/functions/${fn.id}/secrets`, {
      secret: { name: "CONFIG", value: { retries: 3, tags: ["a"] } },
    });
    assert.deepEqual(await read(fn.id, ["API_TOKEN", "CONFIG"]), {
      API_TOKEN: "tok-two-77aa",
      CONFIG: '{"retries":3,"tags":["a"]}',
    });
    assert.equal(
      (await server.call("DELETE", `/functions/${fn.id}/secrets/API_TOKEN`)).status,
      204,
    );
    assert.deepEqual(await read(fn.id, ["API_TOKEN"]), { API_TOKEN: null });
    assert.equal(
      (await server.call("DELETE", `/functions/${fn.id}/secrets/API_TOKEN`)).status,
      404,
    );
    // Another function of the project does not receive a function's own secret.
    assert.deepEqual(await read(deployed.id, ["CONFIG"]), { CONFIG: null });
  });

  it("project secrets reach every function, a function's own secret of the same name wins, and lists never show values", async () => {
    const a = await deployFunction(server, { name: "proj-a", code: reader });
    const b = await deployFunction(server, { name: "proj-b", code: reader });
    assert.equal(
      (
        await server.call("POST", "/secrets", {
          secret: { name: "SHARED", value: "from-project-91" },
        })
      ).status,
      201,
    );
    await server.call("POST", "/secrets", { secret: { name: "REGION", value: "eu" } });
    await server.call("POST", `/functions/${b.id}/secrets`, {
      secret: { name: "SHARED", value: "from-function-b-42" },
    });
    assert.deepEqual(await read(a.id, ["SHARED", "REGION"]), {
      SHARED: "from-project-91",
      REGION: "eu",
    });
    assert.deepEqual(await read(b.id, ["SHARED", "REGION"]), {
      SHARED: "from-function-b-42",
      REGION: "eu",
    });

    const listB = await (await server.call("GET", `/functions/${b.id}/secrets`)).text();
    assert.ok(!listB.includes("from-"));
    assert.deepEqual(
      JSON.parse(listB).data.map((s: any) => [s.name, s.type]),
      [
        ["REGION", "inherited"],
        ["SHARED", "text"],
      ],
    );
    const projectList = await (await server.call("GET", "/secrets")).text();
    assert.ok(!projectList.includes("from-project"));
    assert.ok(JSON.parse(projectList).data.some((s: any) => s.name === "SHARED"));

    assert.equal((await server.call("DELETE", "/secrets/REGION")).status, 204);
    assert.deepEqual(await read(a.id, ["REGION"]), { REGION: null });
  });

  it("bad names, reserved names and oversized values are refused and change nothing", async () => {
    const fn = await deployFunction(server, { name: "validating", code: reader });
    const cases: [unknown, number][] = [
      [{ secret: { name: "lower", value: "x" } }, 400],
      [{ secret: { name: "1ABC", value: "x" } }, 400],
      [{ secret: { name: "KV", value: "x" } }, 400],
      [{ secret: { name: "DB", value: "x" } }, 400],
      [{ secret: { name: "OK" } }, 400],
      [{ secret: { name: "BIG", value: "x".repeat(64 * 1024 + 1) } }, 413],
      [{ secret: { name: "J", value: "{bad", type: "json" } }, 400],
      [{ name: "NOWRAP", value: "x" }, 400],
      ["not json", 400],
    ];
    for (const [body, status] of cases) {
      const res = await server.call("POST", `/functions/${fn.id}/secrets`, body);
      assert.equal(res.status, status, JSON.stringify(body).slice(0, 60));
      assert.ok(((await res.json()) as any).error);
    }
    // Seven 64 KiB secrets fit; an eighth, with the inherited ones, exceeds the 512 KiB total.
    const big = "y".repeat(64 * 1024);
    for (let i = 0; i < 7; i++) {
      const res = await server.call("POST", `/functions/${fn.id}/secrets`, {
        secret: { name: `PART_${i}`, value: big },
      });
      assert.equal(res.status, 201);
    }
    const over = await server.call("POST", `/functions/${fn.id}/secrets`, {
      secret: { name: "PART_8", value: big },
    });
    assert.equal(over.status, 413);
    const list = (await (await server.call("GET", `/functions/${fn.id}/secrets`)).json()) as any;
    assert.ok(!list.data.some((s: any) => s.name === "PART_8"));
  });

  it("another project sees none of them, and deleting a function removes its secrets", async () => {
    const fn = await deployFunction(server, { name: "private-secrets", code: reader });
    await server.call("POST", `/functions/${fn.id}/secrets`, {
      secret: { name: "MINE", value: "mine-3141" },
    });
    const res = await fetch(`${server.url}/admin/v1/projects`, {
      method: "POST",
      headers: { "x-admin-key": server.adminKey, "content-type": "application/json" },
      body: JSON.stringify({ project: { name: "nosy" } }),
    });
    const other = ((await res.json()) as any).data.api_key;
    const headers = { "x-api-key": other };
    assert.equal(
      (await server.call("GET", `/functions/${fn.id}/secrets`, undefined, headers)).status,
      404,
    );
    assert.equal(
      (
        await server.call(
          "POST",
          `/functions/${fn.id}/secrets`,
          { secret: { name: "X", value: "y" } },
          headers,
        )
      ).status,
      404,
    );
    const theirs = (await (await server.call("GET", "/secrets", undefined, headers)).json()) as any;
    assert.ok(!theirs.data.some((s: any) => s.name === "SHARED"));
    const nosy = await deployFunction(server, { name: "nosy", code: reader }, other);
    assert.deepEqual(await read(nosy.id, ["MINE", "SHARED"], other), { MINE: null, SHARED: null });

    assert.equal((await server.call("DELETE", `/functions/${fn.id}`)).status, 204);
    const again = await deployFunction(server, { name: "private-secrets", code: reader });
    assert.deepEqual(await read(again.id, ["MINE"]), { MINE: null });
  });

  it("no secret value appears in plain text in any file of the data dir", async () => {
    await server.call("POST", "/secrets", {
      secret: { name: "NEEDLE", value: "plaintext-needle-5f3e9a" },
    });
    // The function proves it received the value without echoing it (an echoed body would be
    // recorded with the invocation: the function's own choice, not the platform's).
    const fn = await deployFunction(server, {
      name: "needle",
      code: `async function handler(request, env) {
        const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(env.NEEDLE));
        return new Response([...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join(""));
      }`,
    });
    const res = await fetch(`${server.api}/functions/${fn.id}/invoke`, {
      headers: { "x-api-key": server.key },
    });
    const expected = crypto.createHash("sha256").update("plaintext-needle-5f3e9a").digest("hex");
    assert.equal(await res.text(), expected);
    await new Promise((r) => setTimeout(r, 300));
    const hits = filesUnder(server.dataDir).filter((f) =>
      fs.readFileSync(f).includes("plaintext-needle-5f3e9a"),
    );
    assert.deepEqual(hits, []);
    assert.ok(!server.output().includes("plaintext-needle-5f3e9a"));
  });
});

describe("master key", () => {
  it("WORKERBASE_MASTER_KEY from outside is used and no key file is written", async () => {
    const key = Buffer.alloc(32, 7).toString("base64");
    const s = await startServer({ env: { WORKERBASE_MASTER_KEY: key } });
    try {
      const fn = await deployFunction(s, { name: "mk", code: reader });
      await s.call("POST", `/functions/${fn.id}/secrets`, { secret: { name: "S", value: "v" } });
      const res = await fetch(`${s.api}/functions/${fn.id}/invoke?names=S`, {
        headers: { "x-api-key": s.key },
      });
      assert.deepEqual(await res.json(), { S: "v" });
      assert.equal(fs.existsSync(path.join(s.dataDir, "master.key")), false);
    } finally {
      await s.stop();
    }
    const bad = startServer({ env: { WORKERBASE_MASTER_KEY: "too-short" } });
    await assert.rejects(bad, /WORKERBASE_MASTER_KEY/);
  });
});
