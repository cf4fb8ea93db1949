// The dashboard's Versions tab (list, diff, rollback) and Schedules editor, end to end: a real
// server, the built app, and headless Chromium (@sparticuz/chromium) driven by playwright-core.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "../helpers/browser.js";
import { startServer, waitForDeploy, type TestServer } from "../helpers/server.js";

const shots = process.env.DASHBOARD_SHOTS ?? path.join(os.tmpdir(), "workerbase-dashboard-shots");
const desktop = { width: 1280, height: 860 };
const phone = { width: 390, height: 844 };
// The browser's own zone differs from the one the schedule picks, so both columns show.
const browserZone = "America/New_York";

const versionCode = (n: number) => `async function handler(request, env) {
  return Response.json({ version: ${n} });
}
`;

let server: TestServer;
let browser: Browser;
let page: Page;
let fnId = "";
const outside: string[] = [];
const pageErrors: string[] = [];

async function shot(name: string, fullPage = true) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage });
}

async function apiJson(method: string, route: string, body?: unknown) {
  const res = await server.call(method, route, body);
  return { status: res.status, body: res.status === 204 ? null : ((await res.json()) as any) };
}

/** Replaces the editor's text as if pasted (typing would trigger auto-closing brackets). */
async function setCode(code: string) {
  await page.locator(".editor .cm-content").click();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(code);
}

async function tab(name: string) {
  await page.locator(`.tabs [data-tab="${name}"]`).click();
}

async function sidewaysScroll(): Promise<number> {
  return page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
}

before(async () => {
  fs.mkdirSync(shots, { recursive: true });
  server = await startServer();
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: desktop, timezoneId: browserZone });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on("request", (req) => {
    if (!req.url().startsWith(server.url) && !req.url().startsWith("data:"))
      outside.push(req.url());
  });
  page.on("pageerror", (err) => pageErrors.push(err.message));

  // Version 1 through the API, with a message; versions 2 and 3 through the dashboard.
  const created = await apiJson("POST", "/functions", {
    function: { name: "Versioned", code: versionCode(1) },
  });
  assert.equal(created.status, 201);
  fnId = created.body.data.id;
  const deploy = await apiJson("POST", `/functions/${fnId}/deploy`, {
    message: "first: answers 1",
  });
  assert.equal(deploy.status, 202);
  assert.equal((await waitForDeploy(server, fnId)).status, "deployed");

  await page.goto(server.url);
  await page.getByLabel("API key").fill(server.key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Functions" }).waitFor();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe("function versions and schedules in the dashboard", () => {
  it("deploys with a message from the review dialog", async () => {
    await page.goto(`${server.url}/functions/${fnId}`);
    await page.locator(".editor .cm-content").waitFor();
    for (const n of [2, 3]) {
      await setCode(versionCode(n));
      await page.getByRole("button", { name: "Deploy…" }).click();
      const dialog = page.locator("dialog.review");
      await dialog.getByText(`Changes since the live version ${n - 1}`).waitFor();
      await dialog
        .getByLabel("Message (optional)")
        .fill(n === 2 ? "second: answers 2" : "third: answers 3");
      await dialog.getByRole("button", { name: "Deploy", exact: true }).click();
      await page.locator(".deploy-note.ok", { hasText: `Deployed version ${n}` }).waitFor();
    }
    await page.locator('[data-testid="live-version"]', { hasText: "v3 live" }).waitFor();
  });

  it("the Versions tab lists the versions newest first with their messages and the live mark", async () => {
    await tab("versions");
    const rows = page.locator(".table.versions tbody tr");
    await rows.nth(2).waitFor();
    assert.deepEqual(
      await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-version"))),
      ["3", "2", "1"],
    );
    const text = await rows.allInnerTexts();
    assert.match(text[0], /third: answers 3/);
    assert.match(text[1], /second: answers 2/);
    assert.match(text[2], /first: answers 1/);
    assert.match(text[0], /timeout \d+ s/);
    assert.equal(await page.locator('tr[data-version="3"] .live-mark').count(), 1);
    assert.equal(await page.locator(".live-mark").count(), 1);
    assert.equal(
      await page
        .locator('tr[data-version="3"]')
        .getByRole("button", { name: /Roll back/ })
        .count(),
      0,
    );
    assert.equal(
      await page
        .locator('tr[data-version="1"]')
        .getByRole("button", { name: "Roll back to version 1" })
        .count(),
      1,
    );
    await shot("v01-versions");
  });

  it("a diff of two versions shows the changed line", async () => {
    await page.locator(".versions-tab select[name=from]").selectOption("1");
    await page.locator(".versions-tab select[name=to]").selectOption("3");
    await page.getByRole("button", { name: "Show diff" }).click();
    const tabPanel = page.locator(".versions-tab");
    await tabPanel.getByText("Changes from version 1 to version 3").waitFor();
    await tabPanel.locator(".cm-deletedChunk").waitFor();
    assert.match(await tabPanel.locator(".cm-deletedChunk").innerText(), /version: 1/);
    assert.match(await tabPanel.locator(".cm-changedLine").first().innerText(), /version: 3/);
    await shot("v02-versions-diff");
  });

  it("Roll back asks first; Cancel changes nothing", async () => {
    await page
      .locator('tr[data-version="2"]')
      .getByRole("button", { name: /Roll back/ })
      .click();
    const dialog = page.getByRole("dialog", { name: "Roll back to version 2?" });
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /Version 2 becomes live/);
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "detached" });
    const { body } = await apiJson("GET", `/functions/${fnId}`);
    assert.equal(body.data.live_version, 3);
  });

  it("rolling back to version 1 makes it live: the page says so and the endpoint answers version 1", async () => {
    await page
      .locator('tr[data-version="1"]')
      .getByRole("button", { name: /Roll back/ })
      .click();
    const dialog = page.getByRole("dialog", { name: "Roll back to version 1?" });
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /Version 1 becomes live/);
    assert.match(await dialog.innerText(), /instead of version 3/);
    await shot("v03-rollback-confirm");
    await dialog.getByRole("button", { name: "Make version 1 live" }).click();
    await page.locator('[data-testid="live-version"]', { hasText: "v1 live" }).waitFor();
    await page.locator('tr[data-version="1"] .live-mark').waitFor();
    assert.equal(await page.locator(".live-mark").count(), 1);
    await page
      .locator('tr[data-version="3"]')
      .getByRole("button", { name: /Roll back/ })
      .waitFor();
    await shot("v04-rolled-back");

    const res = await fetch(`${server.api}/functions/${fnId}/invoke`, {
      method: "POST",
      headers: { "x-api-key": server.key, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { version: 1 });
    const { body } = await apiJson("GET", `/functions/${fnId}`);
    assert.equal(body.data.live_version, 1);
    assert.equal(body.data.version, 3);
    assert.equal(body.data.code, versionCode(3), "the draft is untouched");
  });

  it("the schedules editor shows the next five runs in the chosen zone and local time, and says why an expression is invalid", async () => {
    await tab("schedules");
    await page.getByText("No schedules.").waitFor();
    assert.ok(
      (await page.locator('datalist#wb-time-zones option[value="Europe/Berlin"]').count()) === 1,
      "the time zone list offers the browser's zones",
    );
    await page.getByRole("button", { name: "Add schedule" }).click();
    const row = page.locator("fieldset.schedule").first();
    await row.getByLabel("Cron expression").fill("*/15 * * * *");
    await row.getByLabel("Time zone").fill("Europe/Berlin");
    const times = row.locator(".next-runs time");
    await page.waitForFunction(() => document.querySelectorAll(".next-runs time").length === 5);
    const at = (await times.evaluateAll((els) => els.map((e) => e.getAttribute("datetime")!))).map(
      (iso) => new Date(iso),
    );
    for (const [i, d] of at.entries()) {
      assert.equal(d.getUTCMinutes() % 15, 0, `${d.toISOString()} is on a quarter hour`);
      assert.equal(d.getUTCSeconds(), 0);
      if (i > 0) assert.equal(d.getTime() - at[i - 1].getTime(), 15 * 60_000);
    }
    assert.ok(at[0].getTime() > Date.now() - 1000 && at[0].getTime() <= Date.now() + 15 * 60_000);
    const headers = await row.locator(".next-runs th").allInnerTexts();
    assert.deepEqual(headers, ["Europe/Berlin", "Local time"]);
    const cells = await row.locator(".next-runs tbody tr").first().locator("td").allInnerTexts();
    assert.equal(cells.length, 2);
    assert.notEqual(cells[0], cells[1], "Berlin and New York show different clock times");
    await shot("v05-schedules");

    await row.getByLabel("Cron expression").fill("61 * * * *");
    await row.getByTestId("cron-error").waitFor();
    assert.match(
      await row.getByTestId("cron-error").innerText(),
      /minute field "61" is out of range/,
    );
    assert.equal(await times.count(), 0);
    await row.getByLabel("Cron expression").fill("*/15 * * *");
    assert.match(await row.getByTestId("cron-error").innerText(), /five fields.*this one has 4/);
    await shot("v06-schedules-invalid");
  });

  it("Save shows the server's refusal beside the field it names, then persists the schedule", async () => {
    const row = page.locator("fieldset.schedule").first();
    await row.getByLabel("Cron expression").fill("61 * * * *");
    await page.getByRole("button", { name: "Save schedules" }).click();
    const slot = page.locator('[data-field="schedules[0].cron"] .field-error');
    await slot.waitFor();
    assert.notEqual((await slot.innerText()).trim(), "");
    assert.equal(
      await row.getByLabel("Cron expression").inputValue(),
      "61 * * * *",
      "the row keeps what was typed",
    );
    assert.deepEqual((await apiJson("GET", `/functions/${fnId}`)).body.data.schedules, []);

    await row.getByLabel("Body (JSON)").fill("{not json");
    await row.getByLabel("Cron expression").fill("*/15 * * * *");
    await page.getByRole("button", { name: "Save schedules" }).click();
    await page
      .locator('[data-field="schedules[0].body"] .field-error', { hasText: "not valid JSON" })
      .waitFor();

    await row.getByLabel("Body (JSON)").fill('{"task": "cleanup"}');
    await page.getByRole("button", { name: "Save schedules" }).click();
    await page.locator(".toast", { hasText: "Schedules saved" }).waitFor();
    const { body } = await apiJson("GET", `/functions/${fnId}`);
    assert.equal(body.data.schedules.length, 1);
    const [saved] = body.data.schedules;
    assert.equal(saved.cron, "*/15 * * * *");
    assert.equal(saved.timezone, "Europe/Berlin");
    assert.deepEqual(saved.body, { task: "cleanup" });
    assert.equal(typeof saved.next_run_at, "string");
    await page
      .locator("fieldset.schedule .server-next", { hasText: "Next run on the server" })
      .waitFor();

    // After a reload the saved schedule is what the editor shows.
    await page.reload();
    await page.locator("fieldset.schedule").first().waitFor();
    assert.equal(
      await page.locator("fieldset.schedule").first().getByLabel("Cron expression").inputValue(),
      "*/15 * * * *",
    );
    assert.equal(
      await page.locator("fieldset.schedule").first().getByLabel("Time zone").inputValue(),
      "Europe/Berlin",
    );
  });

  it("takes at most ten schedules", async () => {
    const add = page.getByRole("button", { name: "Add schedule" });
    while (await add.isEnabled()) await add.click();
    assert.equal(await page.locator("fieldset.schedule").count(), 10);
    await page.getByText("At most 10 schedules.").waitFor();
    for (let n = 10; n > 1; n--)
      await page.getByRole("button", { name: `Remove schedule ${n}` }).click();
    assert.equal(await page.locator("fieldset.schedule").count(), 1);
    assert.ok(await add.isEnabled());
  });

  it("lists older versions a page at a time", async () => {
    // 22 more deploys: 25 versions, more than one page of 20.
    for (let n = 4; n <= 25; n++) {
      assert.equal(
        (await apiJson("PATCH", `/functions/${fnId}`, { function: { code: versionCode(n) } }))
          .status,
        200,
      );
      assert.equal(
        (await apiJson("POST", `/functions/${fnId}/deploy`, { message: `deploy ${n}` })).status,
        202,
      );
      assert.equal((await waitForDeploy(server, fnId)).status, "deployed");
    }
    await page.goto(`${server.url}/functions/${fnId}?tab=versions`);
    const rows = page.locator(".table.versions tbody tr");
    await rows.first().waitFor();
    assert.equal(await rows.count(), 20);
    assert.equal(await rows.first().getAttribute("data-version"), "25");
    await page.getByRole("button", { name: "Older versions" }).click();
    await page.locator('tr[data-version="1"]').waitFor();
    assert.equal(await rows.count(), 25);
    await page.getByRole("button", { name: "Older versions" }).waitFor({ state: "hidden" });
    assert.equal(await page.locator(".live-mark").count(), 1);
    await page.locator('tr[data-version="25"] .live-mark').waitFor();
  });

  it("the versions list and the schedules editor are usable at phone width", async () => {
    await page.setViewportSize(phone);
    await page.goto(`${server.url}/functions/${fnId}?tab=versions`);
    const row = page.locator('tr[data-version="24"]');
    await row.waitFor();
    await page.waitForLoadState("networkidle");
    await shot("v07-phone-versions", false);
    assert.ok((await sidewaysScroll()) <= 0, "the versions tab does not scroll sideways");
    const button = row.getByRole("button", { name: /Roll back/ });
    const box = (await button.boundingBox())!;
    assert.ok(box.x >= 0 && box.x + box.width <= phone.width, "Roll back is on screen");
    assert.match(await row.innerText(), /deploy 24/);
    await button.click();
    const dialog = page.getByRole("dialog", { name: "Roll back to version 24?" });
    await dialog.waitFor();
    await shot("v08-phone-rollback", false);
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });

    await page.locator(".versions-tab select[name=from]").selectOption("23");
    await page.locator(".versions-tab select[name=to]").selectOption("24");
    await page.getByRole("button", { name: "Show diff" }).click();
    await page.locator(".versions-tab .cm-deletedChunk").waitFor();
    await page
      .locator(".compare-card")
      .screenshot({ path: path.join(shots, "v10-phone-diff.png") });
    assert.ok((await sidewaysScroll()) <= 0, "the diff does not scroll the page sideways");

    await page.goto(`${server.url}/functions/${fnId}?tab=schedules`);
    await page.locator("fieldset.schedule .next-runs time").first().waitFor();
    await shot("v09-phone-schedules");
    assert.ok((await sidewaysScroll()) <= 0, "the schedules tab does not scroll sideways");
    await page.setViewportSize(desktop);
  });

  it("loaded nothing from another host and threw no errors", () => {
    assert.deepEqual(outside, []);
    assert.deepEqual(pageErrors, []);
  });
});
