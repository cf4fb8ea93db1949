import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import chromium from "@sparticuz/chromium";
import { chromium as playwright, type Browser } from "playwright-core";
import { root } from "./server.js";

/**
 * The real Chromium that @sparticuz/chromium ships, headless, for the dashboard's browser
 * tests; checks first that the dashboard was built (the server serves dashboard/dist).
 */
export async function launchBrowser(): Promise<Browser> {
  assert.ok(
    fs.existsSync(path.join(root, "dashboard", "dist", "index.html")),
    "the dashboard is built (npm run build:dashboard)",
  );
  chromium.setGraphicsMode = false;
  return playwright.launch({
    executablePath: await chromium.executablePath(),
    args: [
      ...chromium.args,
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
    headless: true,
  });
}
