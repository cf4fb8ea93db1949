// A TypeScript function made in the dashboard, end to end: a real server, the built app, and
// headless Chromium (@sparticuz/chromium) driven by playwright-core. Also the invocations view's
// method, path, version and the stack of a failed call.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "../helpers/browser.js";
import { startServer, type TestServer } from "../helpers/server.js";

const shots = process.env.DASHBOARD_SHOTS ?? path.join(os.tmpdir(), "workerbase-dashboard-shots");

// Throws at line 10, column 11 of the TypeScript source when asked to.
const typed = `interface Order {
  id: number;
  items: string[];
}
type Reply = { id: number; count: number };

async function handler(request: Request): Promise<Response> {
  const order = (await request.json()) as Order;
  if (order.items.length === 0) {
    throw new Error("empty order " + order.id);
  }
  const reply: Reply = { id: order.id, count: order.items.length };
  return Response.json(reply);
}
`;

let server: TestServer;
let browser: Browser;
let page: Page;
let fnId = "";
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

before(async () => {
  fs.mkdirSync(shots, { recursive: true });
  server = await startServer();
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
  page.setDefaultTimeout(10_000);
  page.on("pageerror", (err) => pageErrors.push(err.message));
  await page.goto(server.url);
  await page.getByLabel("API key").fill(server.key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Functions" }).waitFor();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe("TypeScript functions in the dashboard", () => {
  it("a new function can be created as TypeScript, with a typed starter in a TypeScript editor", async () => {
    await page.getByRole("button", { name: "New function" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Orders");
    await page.getByLabel("Language").selectOption("typescript");
    await page.getByRole("button", { name: "Create function" }).click();
    await page.waitForURL(/\/functions\/[0-9a-f-]{36}$/);
    fnId = new URL(page.url()).pathname.split("/").pop()!;
    const content = page.locator(".editor .cm-content");
    await content.waitFor();
    assert.equal(await content.getAttribute("data-language"), "typescript");
    assert.match(await content.innerText(), /async function handler\(request: Request, env: Env\)/);
    await page.locator('[data-testid="language"]', { hasText: "TypeScript" }).waitFor();

    const res = await server.call("GET", `/functions/${fnId}`);
    const { data } = (await res.json()) as any;
    assert.equal(data.language, "typescript");
    assert.match(data.code, /interface Greeting/);
  });

  it("deploys the TypeScript code and runs it from the test panel", async () => {
    await setCode(typed);
    await page.getByRole("button", { name: "Deploy…" }).click();
    const dialog = page.locator("dialog.review");
    await dialog.getByText("First deploy").waitFor();
    await dialog.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.locator(".deploy-note.ok", { hasText: "Deployed version 1" }).waitFor();

    const panel = page.locator(".test-panel");
    await panel.getByLabel("Path").fill("/orders/7?source=panel");
    await panel.getByLabel("JSON body").fill('{"id": 7, "items": ["a", "b", "c"]}');
    await panel.getByRole("button", { name: "Send" }).click();
    await panel.locator('[data-testid="test-status"]', { hasText: "200" }).waitFor();
    assert.deepEqual(JSON.parse(await panel.locator('[data-testid="test-body"]').innerText()), {
      id: 7,
      count: 3,
    });

    await panel.getByLabel("JSON body").fill('{"id": 8, "items": []}');
    await panel.getByRole("button", { name: "Send" }).click();
    await panel.locator('[data-testid="test-status"]', { hasText: "500" }).waitFor();
    await shot("ts-01-test-panel");
  });

  it("the invocations view shows method, path, version and a failed call's stack at the .ts line", async () => {
    await page.locator('.tabs [data-tab="invocations"]').click();
    const failed = page.locator(".inv.failed");
    await failed.waitFor();
    const ok = page.locator(".inv.success");
    assert.match(await ok.locator(".called").innerText(), /^POST \/orders\/7\?source=panel$/);
    assert.equal(await ok.locator(".version").innerText(), "v1");
    await failed.locator(".inv-row").click();
    const stack = failed.locator('pre[data-testid="error-stack"]');
    await stack.waitFor();
    const text = await stack.innerText();
    assert.match(text, /^Error: empty order 8\n\s+at handler \(function\.ts:10:11\)/);
    assert.doesNotMatch(text, /workerbase-(main|setup)\.js/);
    await shot("ts-02-invocation-stack");
    assert.deepEqual(pageErrors, []);
  });
});
