// The baselines: the same handler served by bare workerd (the ceiling), by workerd through the
// Worker Loader alone (the ceiling of dynamic loading), and by Miniflare (for KV and D1, which
// bare workerd has no local implementation of).
import { spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { renderConfig, type WorkerdConfig } from "../src/runtime/config.js";
import { asModule, d1Setup, kvKey, kvValue } from "./handlers.js";
import { workerdChildren } from "./procs.js";

export const compatibilityDate = "2025-11-17";
export const workerdBinary: string = createRequire(import.meta.url)("workerd").default;

/** A server under test: where it listens and which processes do its work. */
export interface Target {
  name: string;
  port: number;
  pids: () => number[];
  stop: () => Promise<void>;
}

/** Starts `workerd serve` on a config in `dir`; resolves once it listens. */
async function serveWorkerd(name: string, dir: string, config: WorkerdConfig): Promise<Target> {
  const configPath = path.join(dir, "config.capnp");
  fs.writeFileSync(configPath, renderConfig(config));
  const args = [
    "serve",
    configPath,
    "--experimental",
    "--socket-addr",
    "http=127.0.0.1:0",
    "--control-fd",
    "3",
  ];
  // As the host does: a parent-death signal, so a killed bench leaves no workerd behind.
  const usePdeath = fs.existsSync("/usr/bin/setpriv");
  const child = spawn(
    usePdeath ? "/usr/bin/setpriv" : workerdBinary,
    usePdeath ? ["--pdeathsig", "KILL", "--", workerdBinary, ...args] : args,
    { stdio: ["ignore", "pipe", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${output}`)), 20_000);
    child.once("exit", () => reject(new Error(`${name} exited:\n${output}`)));
    readline
      .createInterface({ input: child.stdio[3] as NodeJS.ReadableStream })
      .on("line", (line) => {
        try {
          const event = JSON.parse(line);
          if (event.event === "listen") {
            clearTimeout(timer);
            resolve(event.port);
          }
        } catch {
          // not an event
        }
      });
  });
  return {
    name,
    port,
    pids: () => (child.exitCode === null ? [child.pid!] : []),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Bare workerd serving the handler as its only worker: the ceiling. */
export function startBareWorkerd(code: string): Promise<Target> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-bench-bare-"));
  fs.writeFileSync(path.join(dir, "worker.js"), asModule(code));
  return serveWorkerd("bare workerd", dir, {
    services: [
      {
        name: "main",
        worker: {
          modules: [{ name: "worker.js", esModule: { embed: "worker.js" } }],
          compatibilityDate,
          compatibilityFlags: [],
          bindings: [],
        },
      },
    ],
    sockets: [{ name: "http", address: "127.0.0.1:0", service: "main" }],
    v8Flags: [],
  });
}

const loaderFront = `import source from "./function.txt";
const code = () => ({
  compatibilityDate: ${JSON.stringify(compatibilityDate)},
  mainModule: "function.js",
  modules: { "function.js": source },
  globalOutbound: null,
});
export default {
  fetch(request, env) {
    return env.LOADER.get("bench", code).getEntrypoint().fetch(request);
  },
};
`;

/** workerd forwarding every request to the handler through the Worker Loader, nothing else. */
export function startLoaderWorkerd(code: string): Promise<Target> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-bench-loader-"));
  fs.writeFileSync(path.join(dir, "front.js"), loaderFront);
  fs.writeFileSync(path.join(dir, "function.txt"), asModule(code));
  return serveWorkerd("workerd + loader", dir, {
    services: [
      {
        name: "front",
        worker: {
          modules: [
            { name: "front.js", esModule: { embed: "front.js" } },
            { name: "function.txt", text: { embed: "function.txt" } },
          ],
          compatibilityDate,
          compatibilityFlags: [],
          bindings: [{ name: "LOADER", workerLoader: { id: "bench" } }],
        },
      },
    ],
    sockets: [{ name: "http", address: "127.0.0.1:0", service: "front" }],
    v8Flags: [],
  });
}

/**
 * Miniflare (Cloudflare's local simulator, its own workerd) with local KV and D1, seeded,
 * serving `module` (a handler wrapped by `asModule`, or any module worker).
 */
export async function startMiniflare(module: string): Promise<Target> {
  const { Miniflare } = await import("miniflare");
  const before = new Set(workerdChildren(process.pid));
  const mf = new Miniflare({
    modules: true,
    script: module,
    kvNamespaces: ["KV"],
    d1Databases: ["DB"],
    compatibilityDate,
  });
  const url = await mf.ready;
  const pids = workerdChildren(process.pid).filter((p) => !before.has(p));
  // Miniflare's types need @cloudflare/workers-types for this; the shape used is tiny.
  const kv = (await mf.getKVNamespace("KV")) as unknown as {
    put: (key: string, value: string) => Promise<void>;
  };
  await kv.put(kvKey, kvValue);
  const db = await mf.getD1Database("DB");
  for (const sql of d1Setup) await db.prepare(sql).run();
  return {
    name: "Miniflare",
    port: Number(url.port),
    pids: () => pids.filter((p) => fs.existsSync(`/proc/${p}`)),
    stop: () => mf.dispose(),
  };
}

/** Version of Miniflare and of the workerd it runs (it ships its own). */
export function miniflareVersions(): { miniflare: string; workerd: string } {
  const require = createRequire(import.meta.url);
  const miniflare = require("miniflare/package.json").version as string;
  let workerd = "unknown";
  try {
    const main = require.resolve("miniflare");
    const own = createRequire(main)("workerd/package.json") as { version: string };
    workerd = own.version;
  } catch {
    // resolution differs between npm layouts; leave it unknown
  }
  return { miniflare, workerd };
}
