import { defineConfig } from "vite";

// `npm run build:dashboard` writes dashboard/dist, which `workerbase serve` serves at `/`.
// `npm run dev:dashboard` serves it with hot reload and sends API calls to a running server.
const api = process.env.WORKERBASE_URL ?? "http://127.0.0.1:8787";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // The editor chunk (CodeMirror) is ~150 KB gzipped and loads only on a function's page.
    chunkSizeWarningLimit: 700,
    // Timing notes about Vite's own CSS plugin are noise in `npm install` output.
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
  server: { proxy: { "/platform": api } },
});
