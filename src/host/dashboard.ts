import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Context, Next } from "hono";

/** Where `npm run build:dashboard` writes the web app (the same from src/host and dist/host). */
export const dashboardDir = fileURLToPath(new URL("../../dashboard/dist/", import.meta.url));

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

/** Root paths that belong to the APIs: the dashboard never answers for them. */
const reserved = /^\/(platform|admin|healthz|mcp|webhooks)(\/|$)/;

// The app loads nothing from another host; the policy makes sure of it. CodeMirror injects
// its styles at run time, hence 'unsafe-inline' for styles (scripts stay 'self' only).
const pageHeaders = {
  "content-security-policy":
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

const notBuilt = `<!doctype html><meta charset="utf-8"><title>Workerbase</title>
<p>The dashboard is not built. Run <code>npm run build:dashboard</code> (or <code>npm install</code>) and restart the server.</p>`;

async function readFile(file: string): Promise<Buffer | null> {
  try {
    return await fs.readFile(file);
  } catch {
    return null;
  }
}

/**
 * Serves the built dashboard: its files with their content types, and `index.html` for any
 * other page a browser asks for (the app routes on the client). API paths pass through.
 */
export function serveDashboard(dir = dashboardDir) {
  const root = path.resolve(dir);
  return async (c: Context, next: Next) => {
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(c.req.url).pathname);
    } catch {
      return next();
    }
    if (reserved.test(pathname) || pathname.includes("\0")) return next();
    const relative = path.posix.normalize(pathname).replace(/^\/+/, "") || "index.html";
    const file = path.resolve(root, relative);
    if (file.startsWith(root + path.sep) && !relative.endsWith("/")) {
      const body = await readFile(file);
      if (body) {
        const type = contentTypes[path.extname(file)] ?? "application/octet-stream";
        const immutable = relative.startsWith("assets/");
        return c.body(new Uint8Array(body), 200, {
          ...pageHeaders,
          "content-type": type,
          "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
        });
      }
    }
    // A page of the app (no file extension, asked for as HTML): the app itself.
    const wantsPage =
      pathname === "/" ||
      (path.posix.extname(pathname) === "" && (c.req.header("accept") ?? "").includes("text/html"));
    if (!wantsPage) return next();
    const index = await readFile(path.join(root, "index.html"));
    return c.body(index ? new Uint8Array(index) : notBuilt, index ? 200 : 503, {
      ...pageHeaders,
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-cache",
    });
  };
}
