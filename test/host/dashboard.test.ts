import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { Hono } from "hono";
import { serveDashboard } from "../../src/host/dashboard.js";

const dist = fs.mkdtempSync(path.join(os.tmpdir(), "wb-dashboard-"));
fs.mkdirSync(path.join(dist, "assets"));
fs.writeFileSync(path.join(dist, "index.html"), "<!doctype html><title>app</title>");
fs.writeFileSync(path.join(dist, "assets", "index-abc.js"), "console.log(1)");
fs.writeFileSync(path.join(dist, "assets", "index-abc.css"), "body{}");
fs.writeFileSync(path.join(dist, "favicon.svg"), "<svg/>");
const outside = path.join(path.dirname(dist), "wb-secret-outside.txt");
fs.writeFileSync(outside, "secret");
after(() => {
  fs.rmSync(dist, { recursive: true, force: true });
  fs.rmSync(outside, { force: true });
});

function appFor(dir: string) {
  const app = new Hono();
  app.get("/platform/v1/things", (c) => c.json({ data: [] }));
  app.get("*", serveDashboard(dir));
  app.get("/webhooks/whatsapp", (c) => c.text("challenge"));
  app.notFound((c) => c.json({ error: "Not found" }, 404));
  return app;
}

const app = appFor(dist);
const html = { accept: "text/html,application/xhtml+xml" };

describe("serving the dashboard", () => {
  it("serves the app at / and its files with their content types", async () => {
    const root = await app.request("/");
    assert.equal(root.status, 200);
    assert.equal(root.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(root.headers.get("cache-control"), "no-cache");
    assert.match(root.headers.get("content-security-policy")!, /default-src 'self'/);
    assert.match(await root.text(), /<title>app<\/title>/);

    const js = await app.request("/assets/index-abc.js");
    assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.match(js.headers.get("cache-control")!, /immutable/);
    const css = await app.request("/assets/index-abc.css");
    assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
    const svg = await app.request("/favicon.svg");
    assert.equal(svg.headers.get("content-type"), "image/svg+xml");
  });

  it("answers the app's own pages with index.html when a browser asks for HTML", async () => {
    const page = await app.request("/functions/abc?tab=secrets", { headers: html });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>app<\/title>/);
    // Not a browser page: the usual JSON 404.
    const api = await app.request("/functions/abc");
    assert.equal(api.status, 404);
    const missingAsset = await app.request("/assets/missing.js", { headers: html });
    assert.equal(missingAsset.status, 404);
  });

  it("never answers for API paths, even when asked for HTML", async () => {
    const api = await app.request("/platform/v1/things", { headers: html });
    assert.deepEqual(await api.json(), { data: [] });
    const unknown = await app.request("/platform/v1/nothing", { headers: html });
    assert.equal(unknown.status, 404);
    assert.deepEqual(await unknown.json(), { error: "Not found" });
    const later = await app.request("/webhooks/whatsapp", { headers: html });
    assert.equal(await later.text(), "challenge");
  });

  it("does not serve files outside its folder", async () => {
    for (const target of ["/../wb-secret-outside.txt", "/%2e%2e/wb-secret-outside.txt"]) {
      const res = await app.request(target, { headers: html });
      assert.doesNotMatch(await res.text(), /secret/);
    }
  });

  it("says how to build it when it is not built", async () => {
    const empty = appFor(path.join(dist, "no-such-dir"));
    const res = await empty.request("/");
    assert.equal(res.status, 503);
    assert.match(await res.text(), /npm run build:dashboard/);
  });
});
