import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startServer, waitForDeploy, type TestServer } from "../helpers/server.js";

const v1 = `async function handler() { return new Response("one"); }`;
const v2 = `async function handler() { return new Response("two"); }`;

let server: TestServer;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

async function deployedCode(target: string) {
  const res = await server.call("GET", `/functions/${target}/deployed_code`);
  return { status: res.status, body: (await res.json()) as any };
}

describe("GET /functions/{id}/deployed_code", () => {
  it("is all nulls before the first deploy, then the live code, not the draft", async () => {
    const created = await server.call("POST", "/functions", {
      function: { name: "Deployed code", code: v1, runtime_config: { timeout: 5 } },
    });
    const { data: fn } = (await created.json()) as any;

    const before = await deployedCode(fn.id);
    assert.equal(before.status, 200);
    assert.deepEqual(before.body.data, {
      function_id: fn.id,
      version: null,
      code: null,
      runtime_config: null,
      deployed_at: null,
    });

    assert.equal((await server.call("POST", `/functions/${fn.id}/deploy`)).status, 202);
    const deployed = await waitForDeploy(server, fn.id);
    assert.equal(deployed.status, "deployed");

    await server.call("PATCH", `/functions/${fn.id}`, {
      function: { code: v2, runtime_config: { timeout: 9 } },
    });
    const live = await deployedCode("deployed-code");
    assert.equal(live.status, 200);
    assert.equal(live.body.data.version, 1);
    assert.equal(live.body.data.code, v1);
    assert.equal(live.body.data.runtime_config.timeout, 5);
    assert.equal(live.body.data.deployed_at, deployed.last_deployed_at);
  });

  it("a failed redeploy leaves the previous code as the deployed code", async () => {
    const created = await server.call("POST", "/functions", {
      function: { name: "Kept", code: v1 },
    });
    const { data: fn } = (await created.json()) as any;
    await server.call("POST", `/functions/${fn.id}/deploy`);
    await waitForDeploy(server, fn.id);
    await server.call("PATCH", `/functions/${fn.id}`, { function: { code: "function (" } });
    await server.call("POST", `/functions/${fn.id}/deploy`);
    const after = await waitForDeploy(server, fn.id);
    assert.ok(after.deploy_error, "the redeploy failed");
    const live = await deployedCode(fn.id);
    assert.equal(live.body.data.code, v1);
    assert.equal(live.body.data.version, 1);
  });

  it("an unknown function or a missing key is refused", async () => {
    const unknown = await deployedCode("no-such-function");
    assert.equal(unknown.status, 404);
    const res = await fetch(`${server.api}/functions/no-such-function/deployed_code`);
    assert.equal(res.status, 401);
  });
});
