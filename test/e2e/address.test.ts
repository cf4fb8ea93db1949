import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { deployFunction, startServer, type TestServer } from "../helpers/server.js";

// IP literals that carry a loopback, private or metadata address in a form the old checks let
// through. Only refusals are tested: no connection may go out to any of them.
const targets = [
  "http://[::7f00:1]:9/",
  "http://[::ffff:7f00:1]:9/",
  "http://[::ffff:0:7f00:1]:9/",
  "http://[64:ff9b::7f00:1]:9/",
  "http://[64:ff9b:1::a9fe:a9fe]:9/",
  "http://[2002:7f00:1::]:9/",
  "http://[2002:a9fe:a9fe::]/latest/meta-data/",
  "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:9/",
  "http://0x7f.1:9/",
  "http://2130706433:9/",
  "http://127.1:9/",
  "http://0xa9.254.169.254/latest/meta-data/",
];

const fetcher = `async function handler(request) {
  const target = new URL(request.url).searchParams.get("target");
  try {
    const res = await fetch(target);
    return Response.json({ ok: true, status: res.status });
  } catch (err) {
    return Response.json({ ok: false, message: String(err.message) });
  }
}`;

let server: TestServer;
before(async () => {
  server = await startServer({ env: { WORKERBASE_ALLOW_PRIVATE_NETWORK: "0" } });
});
after(async () => {
  await server.stop();
});

describe("addresses that embed a non-public IPv4", () => {
  it("a function's fetch to them is refused by the supervisor, with the sentence", async () => {
    const fn = await deployFunction(server, { name: "embedded-fetcher", code: fetcher });
    for (const target of targets) {
      const res = await server.call(
        "GET",
        `/functions/${fn.id}/invoke?target=${encodeURIComponent(target)}`,
      );
      const out = (await res.json()) as any;
      assert.equal(out.ok, false, target);
      // The supervisor's own sentence, not workerd's network policy answering after a try.
      assert.match(
        out.message,
        /was refused: functions may only reach public addresses \(.*start the server with --allow-private-network\)/,
        `${target} → ${out.message}`,
      );
    }
  });

  it("a webhook subscription to them is a 400 naming the url", async () => {
    for (const url of targets) {
      const res = await server.call("POST", "/webhooks", {
        webhook: { url, events: ["whatsapp.message.received"] },
      });
      assert.equal(res.status, 400, url);
      const body = (await res.json()) as any;
      assert.ok(
        body.details.some((d: any) => d.field === "url" && /not a public address/.test(d.message)),
        `${url} → ${JSON.stringify(body)}`,
      );
    }
  });
});
