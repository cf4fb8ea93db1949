// A public function's page attacking the dashboard (SECURITY.md, "a function's page attacking
// the dashboard"), in a real browser: signed in to the dashboard, the same tab opens an HTML
// page a public function returns from the dashboard's origin. The page's script runs, but in
// an opaque origin: it cannot read the key from sessionStorage nor register a service worker.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "../helpers/browser.js";
import { deployFunction, startServer, type TestServer } from "../helpers/server.js";

const sandbox = "sandbox allow-scripts allow-forms allow-popups allow-downloads";

// What the page's script finds, written into the page itself (#report) by that script.
const hostileHtml = `<!doctype html><html><head><title>hostile</title></head><body>
<pre id="report">script did not run</pre>
<script>
(async () => {
  const report = { ran: true, origin: String(self.origin) };
  try {
    report.key = sessionStorage.getItem("workerbase.apiKey");
    report.session_items = sessionStorage.length;
  } catch (e) { report.session_error = e.name; }
  try { report.local_items = localStorage.length; } catch (e) { report.local_error = e.name; }
  try { report.cookie = document.cookie; } catch (e) { report.cookie_error = e.name; }
  try {
    const reg = await navigator.serviceWorker.register(location.pathname + "/sw.js", { scope: "/" });
    report.service_worker = "registered " + reg.scope;
  } catch (e) { report.service_worker = "refused: " + e.name; }
  document.getElementById("report").textContent = JSON.stringify(report);
})();
</script></body></html>`;

// The page, and on /sw.js a service worker that would take over the whole origin. Both try
// to widen what they may do: Service-Worker-Allowed over "/", a policy of their own with
// allow-same-origin, a nosniff of their own. On /clear, Clear-Site-Data to sign the dashboard out.
const hostileCode = `async function handler(request) {
  const common = { "Service-Worker-Allowed": "/", "X-Content-Type-Options": "sniff-please" };
  const path = new URL(request.url).pathname;
  if (path.endsWith("/clear")) {
    return new Response("<p id=cleared>cleared</p>", {
      headers: { "content-type": "text/html", "Clear-Site-Data": '"storage", "cookies"' },
    });
  }
  if (path.endsWith("/sw.js")) {
    return new Response('self.addEventListener("fetch", (e) => e.respondWith(new Response("owned")));', {
      headers: { ...common, "content-type": "text/javascript" },
    });
  }
  return new Response(${JSON.stringify(hostileHtml)}, {
    headers: {
      ...common,
      "content-type": "text/html; charset=utf-8",
      "Content-Security-Policy": "sandbox allow-scripts allow-same-origin",
    },
  });
}`;

let server: TestServer;
let browser: Browser;
let page: Page;
let hostile: any;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(10_000);
  hostile = await deployFunction(server, {
    name: "hostile",
    public_endpoint: true,
    invoke_response_mode: "passthrough",
    code: hostileCode,
  });
  assert.equal(hostile.status, "deployed", JSON.stringify(hostile));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** One request with a chosen Host header (fetch does not let a caller set it). */
function rawGet(
  url: string,
  host?: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: host ? { host } : {} }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on("error", reject);
  });
}

describe("a public function's page opened in the dashboard's tab", () => {
  it("runs its script in an opaque origin: no key, no storage, no service worker", async () => {
    await page.goto(server.url);
    await page.getByLabel("API key").fill(server.key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Functions" }).waitFor();
    assert.equal(
      await page.evaluate(() => sessionStorage.getItem("workerbase.apiKey")),
      server.key,
      "signed in: the key is in the tab's sessionStorage",
    );

    const invokeUrl = `${server.api}/functions/${hostile.id}/invoke`;
    const response = await page.goto(invokeUrl);
    assert.ok(response);
    assert.equal(response.status(), 200);
    await page.waitForFunction(
      () => document.getElementById("report")?.textContent !== "script did not run",
    );
    const report = JSON.parse((await page.locator("#report").textContent())!);

    assert.equal(report.ran, true, "the page's own script ran");
    assert.equal(report.origin, "null", "the page runs in an opaque origin");
    assert.equal(report.key, undefined, "the key was not read");
    assert.equal(report.session_error, "SecurityError");
    assert.equal(report.local_error, "SecurityError");
    assert.equal(report.cookie_error, "SecurityError");
    assert.match(report.service_worker, /^refused: /);
    assert.doesNotMatch(JSON.stringify(report), new RegExp(server.key));

    const policies = await response.headerValues("content-security-policy");
    assert.ok(policies.includes(sandbox), `sandbox policy present: ${JSON.stringify(policies)}`);
    assert.ok(
      policies.every((p) => p === sandbox || p.includes("allow-same-origin")),
      "the function's own policy is kept beside ours",
    );
    assert.deepEqual(await response.headerValues("x-content-type-options"), ["nosniff"]);
    assert.equal(await response.headerValue("service-worker-allowed"), null);

    // Back on the dashboard: still signed in, and no service worker took over the origin.
    await page.goto(server.url);
    await page.getByRole("heading", { name: "Functions" }).waitFor();
    assert.equal(
      await page.evaluate(() => sessionStorage.getItem("workerbase.apiKey")),
      server.key,
    );
    assert.deepEqual(
      await page.evaluate(async () =>
        (await navigator.serviceWorker.getRegistrations()).map((r) => r.scope),
      ),
      [],
    );
  });

  it("a page sending Clear-Site-Data does not sign the dashboard out", async () => {
    const response = await page.goto(`${server.api}/functions/${hostile.id}/invoke/clear`);
    assert.ok(response);
    await page.locator("#cleared").waitFor();
    assert.equal(await response.headerValue("clear-site-data"), null);
    await page.goto(server.url);
    await page.getByRole("heading", { name: "Functions" }).waitFor();
    assert.equal(
      await page.evaluate(() => sessionStorage.getItem("workerbase.apiKey")),
      server.key,
    );
  });

  it("the service worker script itself loses Service-Worker-Allowed and is sandboxed", async () => {
    const res = await rawGet(`${server.api}/functions/${hostile.id}/invoke/sw.js`);
    assert.equal(res.status, 200);
    assert.equal(res.headers["service-worker-allowed"], undefined);
    assert.equal(res.headers["clear-site-data"], undefined);
    assert.equal(res.headers["x-content-type-options"], "nosniff");
    assert.equal(res.headers["content-security-policy"], sandbox);
  });
});

describe("headers of platform answers", () => {
  it("every API answer, errors included, carries nosniff", async () => {
    const answers = await Promise.all([
      server.call("GET", "/functions"),
      server.call("GET", "/functions/not-a-uuid"),
      server.call("POST", "/functions", "{not json"),
      fetch(`${server.api}/functions`),
      fetch(`${server.api}/nothing-here`, { headers: { "x-api-key": server.key } }),
      fetch(`${server.url}/admin/v1/projects`),
      fetch(`${server.url}/healthz`),
      fetch(`${server.url}/metrics`),
    ]);
    const seen = answers.map((r) => [r.status, r.headers.get("x-content-type-options")]);
    assert.deepEqual(
      seen.map(([, v]) => v),
      answers.map(() => "nosniff"),
      JSON.stringify(seen),
    );
    assert.ok(answers.some((r) => r.status >= 400) && answers.some((r) => r.status === 200));
  });

  it("the invoke route's own answers (not found, wrapped) carry the sandbox and nosniff", async () => {
    const missing = await fetch(`${server.api}/functions/nope/invoke`);
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get("content-security-policy"), sandbox);
    assert.equal(missing.headers.get("x-content-type-options"), "nosniff");

    const wrapped = await deployFunction(server, {
      name: "wrapped-page",
      public_endpoint: true,
      invoke_response_mode: "wrapped",
      code: `async function handler() { return new Response("<script>alert(1)</script>", { headers: { "content-type": "text/html", "service-worker-allowed": "/" } }); }`,
    });
    const res = await fetch(`${server.api}/functions/${wrapped.id}/invoke`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(res.headers.get("content-security-policy"), sandbox);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.equal(res.headers.get("service-worker-allowed"), null);
  });
});

describe("--invoke-origin", () => {
  it("answers for the invoke origin's host carry no sandbox; the dashboard's origin still does", async () => {
    const other = await startServer({ args: ["--invoke-origin", "http://fn.example.test/"] });
    try {
      const fn = await deployFunction(other, {
        name: "page",
        public_endpoint: true,
        code: `async function handler() { return new Response("<p>hi</p>", { headers: { "content-type": "text/html", "Service-Worker-Allowed": "/" } }); }`,
      });
      const url = `${other.api}/functions/${fn.id}/invoke`;
      for (const host of ["fn.example.test", "FN.example.test:80"]) {
        const res = await rawGet(url, host);
        assert.equal(res.status, 200, res.body);
        assert.equal(res.body, "<p>hi</p>");
        assert.equal(res.headers["content-security-policy"], undefined, host);
        assert.equal(res.headers["x-content-type-options"], "nosniff");
        assert.equal(res.headers["service-worker-allowed"], undefined);
      }
      for (const host of [undefined, "fn.example.test:8080", "evil.example.test"]) {
        const res = await rawGet(url, host);
        assert.equal(res.status, 200, res.body);
        assert.equal(res.headers["content-security-policy"], sandbox, String(host));
      }
    } finally {
      await other.stop();
    }
  });

  it("is refused on the dashboard's own host name", async () => {
    await assert.rejects(
      startServer({ args: ["--invoke-origin", "http://127.0.0.1:1234"] }),
      /another host name than the dashboard/,
    );
    await assert.rejects(
      startServer({ args: ["--invoke-origin", "ftp://fn.example.test"] }),
      /http\(s\)/,
    );
  });
});
