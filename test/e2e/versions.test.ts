// Versions and rollback (CONTRACT 8.1) on the real server: every successful deploy is kept
// whole and numbered, a rollback makes an older one live at once, records say which ran.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  eventually,
  startServer,
  storeQuery,
  waitForDeploy,
  type TestServer,
} from "../helpers/server.js";
import { createTestDatabase, dropTestDatabases } from "../helpers/postgres.js";

const code = (n: number) => `async function handler() { return new Response("v${n}"); }`;

let server: TestServer;
const others: TestServer[] = [];

before(async () => {
  server = await startServer({ env: { WORKERBASE_VERSIONS_KEPT: "4" } });
});
after(async () => {
  await Promise.all([server, ...others].map((s) => s?.stop()));
  await dropTestDatabases();
});

async function json(res: Response) {
  return { status: res.status, body: (await res.json()) as any };
}

async function create(name: string, body = code(1)) {
  const res = await server.call("POST", "/functions", { function: { name, code: body } });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as any).data;
}

async function deploy(s: TestServer, id: string, body: string, message?: string) {
  const patched = await s.call("PATCH", `/functions/${id}`, { function: { code: body } });
  assert.equal(patched.status, 200);
  const res = await s.call(
    "POST",
    `/functions/${id}/deploy`,
    message === undefined ? undefined : { message },
  );
  assert.equal(res.status, 202, await res.clone().text());
  return waitForDeploy(s, id);
}

async function invoke(s: TestServer, id: string) {
  const res = await fetch(`${s.api}/functions/${id}/invoke`, {
    headers: { "x-api-key": s.key },
  });
  return { status: res.status, text: await res.text(), id: res.headers.get("x-invocation-id") };
}

describe("versions", () => {
  let fn: any;

  before(async () => {
    fn = await create("versioned");
    for (const n of [1, 2, 3]) await deploy(server, fn.id, code(n), `release ${n}`);
  });

  it("three deploys are three versions, newest first, with their messages and the live one marked", async () => {
    const got = await json(await server.call("GET", `/functions/${fn.id}/versions`));
    assert.equal(got.status, 200);
    assert.deepEqual(
      got.body.data.map((v: any) => [v.version, v.message, v.live]),
      [
        [3, "release 3", true],
        [2, "release 2", false],
        [1, "release 1", false],
      ],
    );
    assert.equal(got.body.data[0].code, undefined, "the list leaves the code out");
    assert.equal(got.body.data[0].language, "javascript");
    assert.equal(got.body.data[0].invoke_response_mode, "passthrough");
    assert.equal(got.body.data[0].runtime_config.timeout, 30);
    assert.equal(got.body.meta.next_cursor, null);

    const one = await json(await server.call("GET", `/functions/${fn.id}/versions/2`));
    assert.equal(one.status, 200);
    assert.equal(one.body.data.code, code(2));
    assert.equal(one.body.data.live, false);

    const page = await json(await server.call("GET", `/functions/versioned/versions?limit=2`));
    assert.deepEqual(
      page.body.data.map((v: any) => v.version),
      [3, 2],
    );
    assert.equal(page.body.meta.next_cursor, 2);
    const rest = await json(
      await server.call("GET", `/functions/versioned/versions?limit=2&after=2`),
    );
    assert.deepEqual(
      rest.body.data.map((v: any) => v.version),
      [1],
    );
    assert.equal(rest.body.meta.next_cursor, null);

    const resource = await json(await server.call("GET", `/functions/${fn.id}`));
    assert.equal(resource.body.data.version, 3);
    assert.equal(resource.body.data.live_version, 3);
  });

  it("a rollback answers with the old code at once, leaves the draft alone, and the next deploy is version + 1", async () => {
    const draft = `async function handler() { return new Response("draft"); }`;
    await server.call("PATCH", `/functions/${fn.id}`, { function: { code: draft } });
    assert.equal((await invoke(server, fn.id)).text, "v3");

    const rolled = await json(
      await server.call("POST", `/functions/${fn.id}/rollback`, { version: 1 }),
    );
    assert.equal(rolled.status, 200, JSON.stringify(rolled.body));
    assert.equal(rolled.body.data.live_version, 1);
    assert.equal(rolled.body.data.version, 3);
    assert.equal(rolled.body.data.status, "deployed");
    assert.equal(rolled.body.data.code, draft, "the draft is untouched");
    // No probe, no waiting: the very next call runs version 1.
    const answered = await invoke(server, fn.id);
    assert.deepEqual([answered.status, answered.text], [200, "v1"]);

    const listed = await json(await server.call("GET", `/functions/${fn.id}/versions`));
    assert.deepEqual(
      listed.body.data.filter((v: any) => v.live).map((v: any) => v.version),
      [1],
    );
    const deployed = await json(await server.call("GET", `/functions/${fn.id}/deployed_code`));
    assert.equal(deployed.body.data.version, 1);
    assert.equal(deployed.body.data.code, code(1));

    // The record says which version ran.
    const record = await eventually(async () => {
      const res = await json(await server.call("GET", `/functions/${fn.id}/invocations?limit=5`));
      return res.body.data.find((r: any) => r.id === answered.id);
    });
    assert.equal(record.version, 1);

    // Rolling back to the live version changes nothing.
    const again = await json(
      await server.call("POST", `/functions/${fn.id}/rollback`, { version: 1 }),
    );
    assert.equal(again.status, 200);
    assert.equal(again.body.data.live_version, 1);

    const next = await deploy(server, fn.id, code(4), "release 4");
    assert.equal(next.version, 4);
    assert.equal(next.live_version, 4);
    assert.equal((await invoke(server, fn.id)).text, "v4");
  });

  it("rollback refuses an unknown version (404), a never deployed function (422) and a bad body (400)", async () => {
    const unknown = await json(
      await server.call("POST", `/functions/${fn.id}/rollback`, { version: 99 }),
    );
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.error, /no version 99/);

    const draft = await create("never-deployed");
    const never = await json(
      await server.call("POST", `/functions/${draft.id}/rollback`, { version: 1 }),
    );
    assert.equal(never.status, 422);
    assert.match(never.body.error, /never been deployed/);

    for (const bad of [{}, { version: "1" }, { version: 0 }, { version: 1.5 }, { other: 1 }]) {
      const res = await json(await server.call("POST", `/functions/${fn.id}/rollback`, bad));
      assert.equal(res.status, 400, JSON.stringify(bad));
      assert.match(res.body.error, /version|other/);
    }
    const notJson = await fetch(`${server.api}/functions/${fn.id}/rollback`, {
      method: "POST",
      headers: { "x-api-key": server.key, "content-type": "application/json" },
      body: "{",
    });
    assert.equal(notJson.status, 400);
    const missing = await json(await server.call("GET", `/functions/${fn.id}/versions/77`));
    assert.equal(missing.status, 404);
    const badNumber = await json(await server.call("GET", `/functions/${fn.id}/versions/abc`));
    assert.equal(badNumber.status, 400);
    const badAfter = await json(await server.call("GET", `/functions/${fn.id}/versions?after=-1`));
    assert.equal(badAfter.status, 400);
    const longMessage = await json(
      await server.call("POST", `/functions/${fn.id}/deploy`, { message: "x".repeat(1001) }),
    );
    assert.equal(longMessage.status, 400);
    assert.match(longMessage.body.error, /message/);
    // Nothing above changed the function.
    assert.equal((await invoke(server, fn.id)).text, "v4");
  });

  it("a failed deploy keeps no version and leaves the live one", async () => {
    const res = await server.call("PATCH", `/functions/${fn.id}`, {
      function: { code: "async function handler( {" },
    });
    assert.equal(res.status, 200);
    await server.call("POST", `/functions/${fn.id}/deploy`, { message: "broken" });
    const after = await waitForDeploy(server, fn.id);
    assert.equal(after.status, "deployed");
    assert.ok(after.deploy_error);
    assert.equal(after.version, 4);
    assert.equal(after.live_version, 4);
    const listed = await json(await server.call("GET", `/functions/${fn.id}/versions`));
    assert.equal(listed.body.data[0].version, 4);
    assert.ok(!listed.body.data.some((v: any) => v.message === "broken"));
    const rows = await storeQuery(
      server,
      "select count(*) as n from deployments where function_id = ? and version is null",
      [fn.id],
    );
    assert.equal(Number(rows[0].n), 0);
  });

  it("keeps the newest WORKERBASE_VERSIONS_KEPT versions; older ones are gone", async () => {
    const kept = await create("pruned");
    for (const n of [1, 2, 3, 4, 5, 6]) await deploy(server, kept.id, code(n));
    const listed = await json(await server.call("GET", `/functions/${kept.id}/versions`));
    assert.deepEqual(
      listed.body.data.map((v: any) => v.version),
      [6, 5, 4, 3],
    );
    const gone = await server.call("POST", `/functions/${kept.id}/rollback`, { version: 2 });
    assert.equal(gone.status, 404);
    assert.equal((await server.call("GET", `/functions/${kept.id}/versions/1`)).status, 404);
  });

  it("deleting a function deletes its versions", async () => {
    const doomed = await create("doomed");
    await deploy(server, doomed.id, code(1));
    await deploy(server, doomed.id, code(2));
    const count = async () =>
      Number(
        (
          await storeQuery(server, "select count(*) as n from deployments where function_id = ?", [
            doomed.id,
          ])
        )[0].n,
      );
    assert.equal(await count(), 2);
    assert.equal((await server.call("DELETE", `/functions/${doomed.id}`)).status, 204);
    assert.equal(await count(), 0);
  });
});

describe("versions across two hosts on one PostgreSQL database", () => {
  it("deploys sent to both hosts at once never share a number, and a rollback on one is run by the other", async () => {
    const database = await createTestDatabase();
    const env = {
      DATABASE_URL: database.url,
      WORKERBASE_MASTER_KEY: crypto.randomBytes(32).toString("base64"),
      WORKERBASE_API_KEY: "wb_versions_" + crypto.randomBytes(12).toString("hex"),
    };
    const [a, b] = await Promise.all([startServer({ env }), startServer({ env })]);
    others.push(a, b);
    const created = await a.call("POST", "/functions", {
      function: { name: "raced", code: code(0) },
    });
    const { data: raced } = (await created.json()) as any;
    let accepted = 0;
    for (let round = 1; round <= 4; round++) {
      await a.call("PATCH", `/functions/${raced.id}`, { function: { code: code(round) } });
      // Both at the same moment: one deploy at a time per function, so one is a 409.
      const answers = await Promise.all([
        a.call("POST", `/functions/${raced.id}/deploy`, { message: `a${round}` }),
        b.call("POST", `/functions/${raced.id}/deploy`, { message: `b${round}` }),
      ]);
      const statuses = answers.map((r) => r.status).sort();
      assert.ok(
        statuses.every((s) => s === 202 || s === 409) && statuses.includes(202),
        String(statuses),
      );
      accepted += statuses.filter((s) => s === 202).length;
      await waitForDeploy(a, raced.id);
      await waitForDeploy(b, raced.id);
    }
    const listed = await json(await b.call("GET", `/functions/${raced.id}/versions`));
    const numbers = listed.body.data.map((v: any) => v.version);
    assert.equal(numbers.length, accepted);
    assert.deepEqual(
      numbers,
      Array.from({ length: accepted }, (_, i) => accepted - i),
    );

    await eventually(async () => ((await invoke(b, raced.id)).text === "v4" ? true : undefined));
    const rolled = await a.call("POST", `/functions/${raced.id}/rollback`, { version: 1 });
    assert.equal(rolled.status, 200);
    // The other host runs version 1 within a second (the change feed).
    const started = Date.now();
    await eventually(async () => ((await invoke(b, raced.id)).text === "v1" ? true : undefined));
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });
});
