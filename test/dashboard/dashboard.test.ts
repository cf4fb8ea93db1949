// The web dashboard, end to end: a real server, the built app, and headless Chromium (the
// binary shipped inside the npm package @sparticuz/chromium) driven by playwright-core.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "../helpers/browser.js";
import { startServer, type TestServer } from "../helpers/server.js";

// Screenshots of every page, to look at (never written into the repository).
const shots = process.env.DASHBOARD_SHOTS ?? path.join(os.tmpdir(), "workerbase-dashboard-shots");
const desktop = { width: 1280, height: 860 };
const phone = { width: 390, height: 844 };

const broken = `async function handler(request, env) {
  const body = await request.json();
  const greeting = (env.GREETING ?? "Hello" + " " + body.name;
  return Response.json({ greeting });
}
`;
const fixed = `async function handler(request, env) {
  if (request.headers.get("x-fail")) throw new Error("asked to fail");
  const body = await request.json();
  console.log("greeting", body.name);
  console.warn("careful", { n: 1 });
  return Response.json({ greeting: (env.GREETING ?? "Hello") + " " + body.name });
}
`;

let server: TestServer;
let browser: Browser;
let page: Page;
let fnId = "";
const outside: string[] = [];
const pageErrors: string[] = [];

async function shot(name: string) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** Replaces the editor's text as if pasted (typing would trigger auto-closing brackets). */
async function setCode(code: string) {
  await page.locator(".editor .cm-content").click();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(code);
}

async function apiJson(method: string, route: string, body?: unknown) {
  const res = await server.call(method, route, body);
  return { status: res.status, body: res.status === 204 ? null : ((await res.json()) as any) };
}

async function tab(name: string) {
  await page.locator(`.tabs [data-tab="${name}"]`).click();
}

before(async () => {
  fs.mkdirSync(shots, { recursive: true });
  server = await startServer();
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: desktop });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on("request", (req) => {
    if (!req.url().startsWith(server.url) && !req.url().startsWith("data:"))
      outside.push(req.url());
  });
  page.on("pageerror", (err) => pageErrors.push(err.message));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe("the web dashboard", () => {
  it("signs in with a project key kept only in sessionStorage; a wrong key gets the server's message", async () => {
    await page.goto(server.url);
    await shot("01-signin");
    await page.getByLabel("API key").fill("wrong-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page
      .locator('[data-field="api_key"] .field-error', { hasText: "Invalid or missing API key" })
      .waitFor();
    await page.getByLabel("API key").fill(server.key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Functions" }).waitFor();
    await page.getByText("No functions yet.").waitFor();
    assert.equal(
      await page.evaluate(() => sessionStorage.getItem("workerbase.apiKey")),
      server.key,
    );
    assert.equal(await page.evaluate(() => localStorage.length), 0);
  });

  it("creates a function; a slug clash shows the server's message beside the slug", async () => {
    await page.getByRole("button", { name: "New function" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Greeter");
    await page.getByRole("button", { name: "Create function" }).click();
    await page.locator(".fn-head h1", { hasText: "Greeter" }).waitFor();
    fnId = new URL(page.url()).pathname.split("/").pop()!;
    assert.match(fnId, /^[0-9a-f-]{36}$/);
    await page.locator(".fn-head .badge", { hasText: "draft" }).waitFor();

    await page.getByRole("link", { name: "← Functions" }).click();
    await page.getByRole("button", { name: "New function" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Another");
    await page.getByLabel("Slug").fill("greeter");
    await page.getByRole("button", { name: "Create function" }).click();
    await page
      .locator('[data-field="slug"] .field-error', { hasText: 'slug "greeter" already exists' })
      .waitFor();
    assert.equal(await page.getByLabel("Name", { exact: true }).inputValue(), "Another");
    await shot("01b-create-error");
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByRole("link", { name: "Greeter" }).click();
    await page.locator(".editor .cm-content").waitFor();
  });

  it("saves with Ctrl+S; a refused save keeps the text and saves once a key is given again", async () => {
    await page.evaluate(() => sessionStorage.setItem("workerbase.apiKey", "revoked-key"));
    await setCode(broken);
    await page.keyboard.press("ControlOrMeta+S");
    await page.locator(".code-card .form-error", { hasText: "Not saved: Invalid" }).waitFor();
    await page.locator(".banner", { hasText: "refused this API key" }).waitFor();
    await shot("01c-key-refused");
    assert.equal(
      (await page.locator(".editor .cm-content").innerText()).trim(),
      broken.trim(),
      "the editor keeps the unsaved text",
    );
    await page.locator(".banner").getByLabel("API key").fill(server.key);
    await page.getByRole("button", { name: "Use this key" }).click();
    await page.locator(".banner").waitFor({ state: "hidden" });
    await page.locator(".editor .cm-content").click();
    await page.keyboard.press("ControlOrMeta+S");
    await page.locator(".toolbar", { hasText: "Saved" }).waitFor();
    const { body } = await apiJson("GET", `/functions/${fnId}`);
    assert.equal(body.data.code, broken);
  });

  it("a deploy with a syntax error marks the line in the editor", async () => {
    await page.keyboard.press("ControlOrMeta+Enter");
    const dialog = page.locator("dialog.review");
    await dialog.getByText("First deploy").waitFor();
    await dialog.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.locator(".deploy-note.failed", { hasText: "line 3" }).waitFor();
    await page.locator(".cm-errorLine").waitFor();
    assert.match(await page.locator(".cm-errorLine").innerText(), /const greeting/);
    assert.equal((await page.locator(".cm-errorGutter").innerText()).trim(), "3");
    await page.locator(".fn-head .badge", { hasText: "error" }).waitFor();
    await shot("02-deploy-error");
  });

  it("fixing the code deploys it, and the review shows the diff against the live version", async () => {
    await setCode(fixed);
    await page.getByRole("button", { name: "Deploy…" }).click();
    await page
      .locator("dialog.review")
      .getByRole("button", { name: "Deploy", exact: true })
      .click();
    await page.locator(".deploy-note.ok", { hasText: "Deployed version 1" }).waitFor();
    await page.locator(".fn-head .badge", { hasText: "deployed" }).waitFor();
    assert.equal(await page.locator(".cm-errorLine").count(), 0);

    await setCode(fixed.replace('"Hello"', '"Hi"'));
    await page.keyboard.press("ControlOrMeta+Enter");
    const dialog = page.locator("dialog.review");
    await dialog.getByText("Changes since the live version 1").waitFor();
    await dialog.locator(".cm-deletedChunk").waitFor();
    assert.match(await dialog.locator(".cm-deletedChunk").innerText(), /"Hello"/);
    assert.match(await dialog.locator(".cm-changedLine").first().innerText(), /"Hi"/);
    await shot("03-review-diff");
    await page.keyboard.press("ControlOrMeta+Enter");
    await page.locator(".deploy-note.ok", { hasText: "Deployed version 2" }).waitFor();
    const { body } = await apiJson("GET", `/functions/${fnId}/deployed_code`);
    assert.match(body.data.code, /"Hi"/);
  });

  it("unsaved editor text survives a reload of the tab and can be discarded", async () => {
    await setCode(fixed.replace('"Hello"', '"Unsaved"'));
    await page.locator(".toolbar", { hasText: "Unsaved changes" }).waitFor();
    await page.waitForTimeout(400); // the backup is written 300 ms after the last change
    page.once("dialog", (d) => void d.accept()); // the "leave this page?" prompt
    await page.reload();
    await page.locator(".notice", { hasText: "were restored" }).waitFor();
    assert.match(await page.locator(".editor .cm-content").innerText(), /"Unsaved"/);
    await page.getByRole("button", { name: "Discard them" }).click();
    await page.locator(".toolbar", { hasText: "Saved" }).waitFor();
    assert.match(await page.locator(".editor .cm-content").innerText(), /"Hi"/);
  });

  it("a secret added on the Secrets tab reaches the function, shown through the test panel", async () => {
    await tab("secrets");
    await page.getByText("No secrets yet.").waitFor();
    const form = page.locator(".secrets-tab form");
    await form.getByLabel("Name", { exact: true }).fill("bad name");
    await form.getByLabel("Value", { exact: true }).fill("x");
    await form.getByRole("button", { name: "Add secret" }).click();
    await form.locator('[data-field="name"] .field-error', { hasText: "Invalid name" }).waitFor();
    await form.getByLabel("Name", { exact: true }).fill("GREETING");
    await form.getByLabel("Value", { exact: true }).fill("Hola");
    await form.getByRole("button", { name: "Add secret" }).click();
    await page.locator('[data-secret="GREETING"]', { hasText: "text" }).waitFor();
    assert.equal(
      await form.getByLabel("Value", { exact: true }).inputValue(),
      "",
      "the value is not shown again",
    );
    assert.equal(await page.getByText("Hola").count(), 0);
    await shot("04-secrets");

    await tab("code");
    const panel = page.locator(".test-panel");
    await panel.getByLabel("JSON body").fill('{"name": "Ana"}');
    await panel.getByRole("button", { name: "Send" }).click();
    await panel.locator('[data-testid="test-status"]', { hasText: "200" }).waitFor();
    assert.match(await panel.locator('[data-testid="test-body"]').innerText(), /Hola Ana/);
    await panel.locator(".logs li", { hasText: "greeting Ana" }).waitFor();
    await panel.locator(".logs li.warn", { hasText: "careful { n: 1 }" }).waitFor();
    await panel.locator("summary", { hasText: "Headers" }).click();
    await panel.locator(".kv-table th", { hasText: "x-invocation-id" }).waitFor();

    await panel.getByLabel("JSON body").fill("{not json");
    await panel.getByRole("button", { name: "Send" }).click();
    await panel
      .locator('[data-field="body"] .field-error', { hasText: "not valid JSON" })
      .waitFor();
    await panel.getByLabel("JSON body").fill('{"name": "Bo"}');
    await panel.getByLabel("Headers").fill("X-Fail: yes");
    await panel.getByRole("button", { name: "Send" }).click();
    await panel.locator('[data-testid="test-status"]', { hasText: "500" }).waitFor();
    await panel.locator(".console .error", { hasText: "asked to fail" }).waitFor();
    await shot("05-code-test-panel");
  });

  it("the Invocations tab lists calls with status, duration and logs, filters, and refreshes itself", async () => {
    await tab("invocations");
    const rows = page.locator(".inv");
    await rows.nth(1).waitFor();
    assert.equal(await rows.count(), 2);
    await page.locator(".inv.success .inv-row").click();
    await page.locator(".inv-details .logs li", { hasText: "greeting Ana" }).waitFor();
    assert.match(await page.locator(".inv.success .inv-row").innerText(), /200[\s\S]*ms/);
    await shot("06-invocations");

    await page.getByLabel("Status").selectOption("failed");
    await page.waitForFunction(() => document.querySelectorAll(".inv").length === 1);
    assert.equal(await page.locator(".inv.failed").count(), 1);
    await page.getByLabel("Status").selectOption("");
    await page.waitForFunction(() => document.querySelectorAll(".inv").length === 2);

    // A call made elsewhere shows up without touching the page.
    const res = await fetch(`${server.api}/functions/${fnId}/invoke`, {
      method: "POST",
      headers: { "x-api-key": server.key, "content-type": "application/json" },
      body: JSON.stringify({ name: "Cy" }),
    });
    assert.equal(res.status, 200);
    await page.waitForFunction(() => document.querySelectorAll(".inv").length === 3, null, {
      timeout: 10_000,
    });
  });

  it("settings show the server's message beside the field and keep what was typed", async () => {
    await tab("settings");
    const form = page.locator("form.settings");
    await form.getByLabel("Timeout (seconds)").fill("999");
    await form.getByRole("button", { name: "Save settings" }).click();
    await form
      .locator('[data-field="runtime_config.timeout"] .field-error', { hasText: "timeout" })
      .waitFor();
    assert.equal(await form.getByLabel("Timeout (seconds)").inputValue(), "999");
    await shot("07-settings-error");
    await form.getByLabel("Timeout (seconds)").fill("10");
    await form.getByLabel(/Public endpoint/).check();
    await form.getByLabel("Response mode").selectOption("wrapped");
    await form.getByLabel("Name", { exact: true }).fill("Greeter v2");
    await page.keyboard.press("ControlOrMeta+S");
    await page.locator(".fn-head .pill", { hasText: "public" }).waitFor();
    await page.locator(".fn-head h1", { hasText: "Greeter v2" }).waitFor();
    const { body } = await apiJson("GET", `/functions/${fnId}`);
    assert.equal(body.data.public_endpoint, true);
    assert.equal(body.data.invoke_response_mode, "wrapped");
    assert.equal(body.data.runtime_config.timeout, 10);
  });

  it("the functions list shows status, version, last deploy, access and a copyable endpoint", async () => {
    await page.getByRole("link", { name: "Functions", exact: true }).click();
    const row = page.locator('tr[data-function="greeter"]');
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, /Greeter v2/);
    assert.match(text, /deployed/);
    assert.match(text, /v2/);
    assert.match(text, /public/);
    assert.match(text, /just now|min ago/);
    assert.match(text, new RegExp(`/platform/v1/functions/${fnId}/invoke`));
    await row.getByRole("button", { name: "Copy" }).click();
    await row.getByRole("button", { name: "Copied" }).waitFor();
    assert.equal(
      await page.evaluate(() => navigator.clipboard.readText()),
      `${server.url}/platform/v1/functions/${fnId}/invoke`,
    );
    await shot("08-functions");
  });

  it("the KV browser searches by prefix, shows, edits and deletes values", async () => {
    for (const [key, value] of [
      ["user:1", '{"name":"Ana"}'],
      ["user:2", "two"],
      ["order:1", "o1"],
    ]) {
      const res = await fetch(`${server.api}/kv/values/${encodeURIComponent(key)}`, {
        method: "PUT",
        headers: { "x-api-key": server.key },
        body: value,
      });
      assert.equal(res.status, 204);
    }
    await page.getByRole("link", { name: "KV" }).click();
    await page.locator('button.key[data-key="order:1"]').waitFor();
    await page.getByPlaceholder("Key prefix").fill("user:");
    await page.getByRole("button", { name: "Search" }).click();
    await page.waitForFunction(() => document.querySelectorAll("button.key").length === 2);
    await page.locator('button.key[data-key="user:1"]').click();
    const value = page.locator(".kv-viewer").getByLabel("Value");
    await page.waitForFunction(
      () => (document.querySelector(".kv-viewer textarea") as HTMLTextAreaElement)?.value !== "",
    );
    assert.equal(await value.inputValue(), '{"name":"Ana"}');
    await shot("09-kv");
    await value.fill('{"name":"Ana","admin":true}');
    await page.getByRole("button", { name: "Save value" }).click();
    await page.getByText("Saved user:1").waitFor();
    const stored = await fetch(`${server.api}/kv/values/user%3A1`, {
      headers: { "x-api-key": server.key },
    });
    assert.equal(await stored.text(), '{"name":"Ana","admin":true}');

    page.once("dialog", (d) => void d.accept());
    await page.locator(".kv-viewer").getByRole("button", { name: "Delete" }).click();
    await page.waitForFunction(() => document.querySelectorAll("button.key").length === 1);
    const gone = await fetch(`${server.api}/kv/values/user%3A1`, {
      headers: { "x-api-key": server.key },
    });
    assert.equal(gone.status, 404);

    await page.getByRole("button", { name: "New key" }).click();
    await page.locator(".kv-viewer").getByLabel("Key").fill("user:3");
    await page.locator(".kv-viewer").getByLabel("Value").fill("three");
    await page.locator(".kv-viewer").getByLabel("Expires in (seconds)").fill("5");
    await page.getByRole("button", { name: "Add key" }).click();
    await page
      .locator('.kv-viewer [data-field="expiration_ttl"] .field-error', { hasText: "60" })
      .waitFor();
    await page.locator(".kv-viewer").getByLabel("Expires in (seconds)").fill("");
    await page.getByRole("button", { name: "Add key" }).click();
    await page.locator('button.key[data-key="user:3"]').waitFor();
  });

  it("the database console lists tables, runs SQL and shows results in a grid", async (t) => {
    const probe = await server.call("POST", "/database/query", { sql: "SELECT 1" });
    if (probe.status === 404) {
      t.skip("the database data API is not in this build yet");
      return;
    }
    await page.getByRole("link", { name: "Database" }).click();
    const sql = page.getByLabel("SQL", { exact: true });
    await sql.fill(
      "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL);\n" +
        "INSERT INTO items (name, price) VALUES ('pen', 1.5), ('ink', NULL);",
    );
    await page.getByRole("button", { name: "Run" }).click();
    await page.locator('button.table-name[data-table="items"]').waitFor();
    await page.locator('button.table-name[data-table="items"]').click();
    await page.locator(".table.grid td", { hasText: "pen" }).waitFor();
    assert.equal(await page.locator(".table.grid tbody tr").count(), 2);
    assert.equal(await page.locator(".table.grid td.null").count(), 1);
    await shot("10-sql");
    await sql.fill("SELECT * FROM missing_table");
    await sql.press("ControlOrMeta+Enter");
    await page.locator(".form-error, .field-error", { hasText: "missing_table" }).first().waitFor();
  });

  it("is usable at phone width: no sideways scrolling on any page", async () => {
    await page.setViewportSize(phone);
    const pages: [string, string, (() => Promise<void>)?][] = [
      ["11-phone-functions", "/"],
      [
        "12-phone-review",
        `/functions/${fnId}`,
        async () => {
          await setCode(fixed.replace('"Hello"', '"Hey"'));
          await page.getByRole("button", { name: "Deploy…" }).click();
          await page.locator("dialog.review .cm-deletedChunk").waitFor();
        },
      ],
      ["13-phone-invocations", `/functions/${fnId}?tab=invocations`],
      ["14-phone-secrets", `/functions/${fnId}?tab=secrets`],
      ["15-phone-settings", `/functions/${fnId}?tab=settings`],
      ["16-phone-kv", "/data/kv", () => page.locator('button.key[data-key="user:2"]').click()],
      ["17-phone-sql", "/data/sql", () => page.locator("button.table-name").click()],
    ];
    for (const [name, url, act] of pages) {
      await page.goto(server.url + url);
      await page.locator(".page h1").first().waitFor();
      await page.waitForLoadState("networkidle");
      if (act) {
        await act();
        await page.waitForLoadState("networkidle");
      }
      await shot(name);
      if (name === "12-phone-review") {
        await page.keyboard.press("Escape");
        await setCode(fixed.replace('"Hello"', '"Hi"'));
        await page.locator(".toolbar", { hasText: "Saved" }).waitFor();
      }
      const overflow = await page.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      assert.ok(overflow <= 0, `${url} scrolls sideways by ${overflow}px at phone width`);
    }
    await page.setViewportSize(desktop);
  });

  it("signs out: the key is gone and the sign-in form is back", async () => {
    await page.setViewportSize(phone);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    await shot("18-phone-signin");
    await page.setViewportSize(desktop);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("workerbase.apiKey")), null);
    await page.goto(`${server.url}/functions/${fnId}`);
    await page.getByRole("button", { name: "Sign in" }).waitFor();
  });

  it("loaded nothing from another host and threw no errors", () => {
    assert.deepEqual(outside, []);
    assert.deepEqual(pageErrors, []);
  });
});
