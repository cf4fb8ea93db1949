import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { deployFunction, startServer } from "../helpers/server.js";

const fetcher = `async function handler(request) {
  const target = new URL(request.url).searchParams.get("target");
  try {
    const res = await fetch(target);
    return Response.json({ ok: true, status: res.status, body: await res.text() });
  } catch (err) {
    return Response.json({ ok: false, isError: err instanceof Error, message: String(err.message) });
  }
}`;

let upstream: http.Server;
let upstreamUrl: string;

before(async () => {
  upstream = http.createServer((_req, res) => res.end("upstream says hi"));
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
});
after(() => upstream.close());

async function attempt(server: { api: string; key: string }, fnId: string, target: string) {
  const res = await fetch(
    `${server.api}/functions/${fnId}/invoke?target=${encodeURIComponent(target)}`,
    {
      headers: { "x-api-key": server.key },
    },
  );
  return (await res.json()) as any;
}

describe("egress", () => {
  it("refuses loopback, private and metadata addresses by default with an Error that says why", async () => {
    const server = await startServer({ env: { WORKERBASE_ALLOW_PRIVATE_NETWORK: "0" } });
    try {
      const fn = await deployFunction(server, { name: "fetcher", code: fetcher });
      for (const target of [
        upstreamUrl,
        `${server.api}/functions`,
        "http://localhost:8787/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]:80/",
      ]) {
        const out = await attempt(server, fn.id, target);
        assert.equal(out.ok, false, target);
        assert.equal(out.isError, true, target);
        assert.match(out.message, /refused|not public/, target);
      }
    } finally {
      await server.stop();
    }
  });

  it("allows loopback with WORKERBASE_ALLOW_PRIVATE_NETWORK=1", async () => {
    const server = await startServer({ env: { WORKERBASE_ALLOW_PRIVATE_NETWORK: "1" } });
    try {
      const fn = await deployFunction(server, { name: "fetcher", code: fetcher });
      const out = await attempt(server, fn.id, upstreamUrl);
      assert.deepEqual(out, { ok: true, status: 200, body: "upstream says hi" });
      // The host's internal channel is not reachable without the runtime's token.
      const api = await attempt(server, fn.id, `${server.api}/functions`);
      assert.equal(api.status, 401);
    } finally {
      await server.stop();
    }
  });
});
