import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import type { RunningHost } from "../host/boot.js";
import { slugify } from "../functions/schema.js";
import { CliError, intFlag, stringFlag } from "./args.js";
import { seg, type Command } from "./command.js";
import { Client } from "./http.js";
import { err, out } from "./output.js";
import { notFound, type FunctionResource } from "./functions.js";
import { deployAndWait } from "./functions.js";
import { formatInvocation, type Invocation } from "./logs.js";
import { parseDevVars } from "./devvars.js";
import { display } from "./manifest.js";
import { locateError } from "./sync.js";
import { checkCode, languageOf, toSourceText } from "./source.js";
import type { TraceMap } from "@jridgewell/trace-mapping";

/** Settings of `workerbase dev`, units in the names. */
const devDefaults = {
  port: 8788,
  dataDir: ".workerbase-dev",
  /** Saves that come in a burst (editors write twice) are one reload. */
  debounceMs: 60,
  /** How long to wait for an invocation's record to print its console lines. */
  recordWaitMs: 1500,
};

/** The key of the local dev project, kept in the dev data dir so that restarts reuse it. */
function devKey(dataDir: string): string {
  const file = path.join(dataDir, "credentials.json");
  try {
    const saved = JSON.parse(fs.readFileSync(file, "utf8")) as { api_key?: string };
    if (saved.api_key) return saved.api_key;
  } catch {
    // made below
  }
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = "wb_dev_" + crypto.randomBytes(18).toString("base64url");
  fs.writeFileSync(file, JSON.stringify({ api_key: key }) + "\n", { mode: 0o600 });
  return key;
}

/** Error text from the runtime with `function.js:L:C` pointing at the user's file instead. */
function inUserFile(text: string, file: string): string {
  return text.replace(/function\.[jt]s:(\d+):(\d+)/g, `${display(file)}:$1:$2`);
}

class DevSession {
  private api: Client;
  private lastCode: string | undefined;
  private lastVars = new Map<string, string>();
  private good = false;
  private lastError = "";
  private running: Promise<void> = Promise.resolve();
  private secretsMissing = false;
  /** A TypeScript file's source map for the version that serves (null for JavaScript). */
  private map: TraceMap | null = null;
  /** Whether the function exists in the dev project (a first save that fails a check does not make it). */
  private saved = false;

  constructor(
    private host: RunningHost,
    key: string,
    private file: string,
    private varsFile: string,
    readonly slug: string,
  ) {
    this.api = new Client(
      host.url,
      "/platform/v1",
      { value: key, source: "dev" },
      "x-api-key",
      "API key",
    );
  }

  /** Saves the file's code and deploys it; a bad version is reported while the last good one serves. */
  private async reloadCode(first: boolean) {
    let code: string;
    try {
      code = fs.readFileSync(this.file, "utf8");
    } catch {
      err.line(
        err.paint.yellow(`cannot read ${display(this.file)}; still serving the last good version`),
      );
      return;
    }
    if (code === this.lastCode) return;
    this.lastCode = code;
    const started = performance.now();
    // Compiled and checked here, as the deploy would, so that a TypeScript error or an
    // import that cannot work is reported with the user's own line before anything is sent.
    const checked = await checkCode(code, languageOf(this.file));
    if (!checked.ok) {
      this.lastError =
        checked.kind === "syntax"
          ? locateError(checked.message, this.file)
          : `${display(this.file)}:${checked.line}: ${checked.message}`;
      err.line(`${err.paint.red("error:")} ${this.lastError}`);
      if (this.good) err.line(err.paint.dim("  the last good version keeps serving"));
      return;
    }
    code = checked.js;
    if (!this.saved) {
      const res = await this.api.send("GET", `/functions/${seg(this.slug)}`);
      if (res.status === 404) {
        await this.api.call("POST", "/functions", {
          json: { function: { name: path.basename(this.file), slug: this.slug, code } },
        });
      } else if (!res.ok) throw await this.api.failure(res);
      else await this.patch(code);
      this.saved = true;
    } else await this.patch(code);
    const outcome = await deployAndWait(this.api, this.slug);
    const ms = Math.round(performance.now() - started);
    if (outcome.ok) {
      this.good = true;
      this.map = checked.map;
      out.line(
        `${out.paint.green("✓")} ${first ? "loaded" : "reloaded"} ${display(this.file)} (version ${outcome.fn.version}, ${ms} ms)`,
      );
    } else {
      this.lastError = locateError(
        await toSourceText(outcome.fn.deploy_error ?? "deploy failed", checked.map),
        this.file,
      );
      err.line(`${err.paint.red("error:")} ${this.lastError}`);
      if (this.good) err.line(err.paint.dim("  the last good version keeps serving"));
    }
  }

  private async patch(code: string) {
    await this.api.call("PATCH", `/functions/${seg(this.slug)}`, {
      json: { function: { code } },
      notFound: notFound(this.slug),
    });
  }

  /** Makes the function's own secrets exactly the `.dev.vars` file's. */
  private async reloadVars(first: boolean) {
    let vars = new Map<string, string>();
    if (fs.existsSync(this.varsFile)) {
      try {
        vars = parseDevVars(fs.readFileSync(this.varsFile, "utf8"), this.varsFile);
      } catch (e) {
        if (first || !(e instanceof CliError)) throw e;
        err.line(`${err.paint.red("error:")} ${e.message}; secrets unchanged`);
        return;
      }
    }
    const route = `/functions/${seg(this.slug)}/secrets`;
    let stale = [...this.lastVars.keys()].filter((name) => !vars.has(name));
    if (first) {
      const res = await this.api.send("GET", route);
      if (res.status === 404) {
        this.secretsMissing = true;
        if (vars.size > 0)
          err.line(err.paint.yellow("this build has no secrets API; .dev.vars is ignored"));
        return;
      }
      const listed = (await res.json()) as { data: { name: string; type: string }[] };
      stale = listed.data
        .filter((s) => s.type !== "inherited" && !vars.has(s.name))
        .map((s) => s.name);
    }
    if (this.secretsMissing) return;
    for (const name of stale) await this.api.call("DELETE", `${route}/${name}`);
    for (const [name, value] of vars) {
      if (this.lastVars.get(name) === value) continue;
      await this.api.call("POST", route, { json: { secret: { name, value } } });
    }
    const changed =
      first || stale.length > 0 || [...vars].some(([n, v]) => this.lastVars.get(n) !== v);
    this.lastVars = vars;
    if (changed && (vars.size > 0 || !first)) {
      out.line(
        `${out.paint.green("✓")} secrets from ${display(this.varsFile)}: ${[...vars.keys()].join(", ") || "(none)"}`,
      );
    }
  }

  /** Runs reloads one after another, never two at once. */
  queue(task: "code" | "vars", first = false): Promise<void> {
    this.running = this.running
      .then(() => (task === "code" ? this.reloadCode(first) : this.reloadVars(first)))
      .catch((e) => {
        if (first) throw e;
        err.line(`${err.paint.red("error:")} ${(e as Error).message}`);
      });
    return this.running;
  }

  /** Sends one request from the dev port to the function's invoke route, then prints its record. */
  proxy(req: http.IncomingMessage, res: http.ServerResponse) {
    if (!this.good) {
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8" });
      res.end(`${display(this.file)} has no working version yet: ${this.lastError}\n`);
      return;
    }
    const started = performance.now();
    const headers = { ...req.headers, "x-api-key": this.api.credential.value };
    const upstream = http.request(
      {
        host: "127.0.0.1",
        port: this.host.port,
        method: req.method,
        path: `/platform/v1/functions/${seg(this.slug)}/invoke${req.url ?? "/"}`,
        headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on("end", () => {
          const ms = Math.round(performance.now() - started);
          const id = answer.headers["x-invocation-id"];
          const status = answer.statusCode ?? 0;
          const line = `${req.method} ${req.url} → ${status} (${ms} ms)`;
          out.line(status < 400 ? out.paint.dim(line) : out.paint.red(line));
          if (typeof id === "string") void this.printRecord(id);
        });
      },
    );
    upstream.on("error", (e) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(`workerbase dev: ${e.message}\n`);
    });
    req.pipe(upstream);
  }

  /** Prints an invocation's console lines and error once its record is stored. */
  private async printRecord(id: string) {
    const deadline = Date.now() + devDefaults.recordWaitMs;
    while (Date.now() < deadline) {
      try {
        const { data } = await this.api.call<{ data: Invocation[] }>(
          "GET",
          `/functions/${seg(this.slug)}/invocations`,
          { query: { limit: 20 } },
        );
        const record = data.find((r) => r.id === id);
        if (record) {
          const lines = formatInvocation(record).split("\n").slice(1);
          if (lines.length > 0)
            out.line(inUserFile(await toSourceText(lines.join("\n"), this.map), this.file));
          return;
        }
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 30));
    }
  }
}

export const devCommand: Command = {
  name: "dev",
  usage: "<file.js|file.ts> [--port n] [--vars .dev.vars] [--data dir]",
  summary:
    "run one handler (JavaScript or TypeScript) locally on the real runtime, reloading when the file changes",
  args: [1, 1],
  flags: {
    port: { type: "string", value: "n", help: `where to serve it (default ${devDefaults.port})` },
    vars: {
      type: "string",
      value: "path",
      help: "secrets as NAME=value lines (default .dev.vars beside the file, else here)",
    },
    data: {
      type: "string",
      value: "dir",
      help: `local KV, database and state (default ${devDefaults.dataDir})`,
    },
  },
  async run(args) {
    const file = path.resolve(args.positionals[0]);
    if (!fs.existsSync(file)) throw new CliError(`${display(file)} does not exist`);
    const port = intFlag(args, "port", 0, 65535) ?? devDefaults.port;
    const dataDir = path.resolve(stringFlag(args, "data") ?? devDefaults.dataDir);
    const beside = path.join(path.dirname(file), ".dev.vars");
    const varsFile = path.resolve(
      stringFlag(args, "vars") ?? (fs.existsSync(beside) ? beside : ".dev.vars"),
    );
    const key = devKey(dataDir);
    // Loaded here so that other commands do not pay for the host's modules.
    const { loadConfig } = await import("../host/config.js");
    const { startHost } = await import("../host/boot.js");
    const config = {
      ...loadConfig([], {}),
      host: "127.0.0.1",
      port: 0,
      dataDir,
      apiKey: key,
      allowPrivateNetwork: true,
      runtimeProcesses: 1,
      recordFlushMs: 20,
    };

    // The dev port is taken first, so that a busy port fails before anything starts.
    let session: DevSession | undefined;
    const server = http.createServer((req, res) => {
      if (session) session.proxy(req, res);
      else res.writeHead(503).end("starting\n");
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) =>
        reject(
          new CliError(
            e.code === "EADDRINUSE"
              ? `port ${port} is in use; pick another with --port`
              : e.message,
          ),
        ),
      );
      server.listen(port, "127.0.0.1", () => resolve());
    });
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;

    const host = await startHost(config, () => {});
    const watchers: fs.FSWatcher[] = [];
    const stopAll = async () => {
      for (const w of watchers) w.close();
      server.close();
      server.closeAllConnections();
      await host.shutdown();
    };
    try {
      session = new DevSession(
        host,
        key,
        file,
        varsFile,
        slugify(path.basename(file, path.extname(file))),
      );
      out.line(
        `${out.paint.bold("workerbase dev")}: ${display(file)} on ${out.paint.cyan(url)} (state in ${display(dataDir)})`,
      );
      await session.queue("code", true);
      await session.queue("vars", true);
    } catch (e) {
      await stopAll();
      throw e;
    }

    const timers = new Map<string, NodeJS.Timeout>();
    const watch = (target: string, task: "code" | "vars") => {
      const dir = path.dirname(target);
      if (!fs.existsSync(dir)) return;
      const name = path.basename(target);
      watchers.push(
        fs.watch(dir, (_event, changed) => {
          if (changed && changed.toString() !== name) return;
          clearTimeout(timers.get(task));
          timers.set(
            task,
            setTimeout(() => void session!.queue(task), devDefaults.debounceMs),
          );
        }),
      );
    };
    watch(file, "code");
    watch(varsFile, "vars");
    out.line(out.paint.dim(`watching ${display(file)} and ${display(varsFile)}; Ctrl-C stops`));

    return new Promise<number>((resolve) => {
      const stop = () => {
        for (const t of timers.values()) clearTimeout(t);
        stopAll().then(
          () => resolve(0),
          (e) => {
            err.line(`shutdown failed: ${(e as Error).message}`);
            resolve(1);
          },
        );
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
  },
};
