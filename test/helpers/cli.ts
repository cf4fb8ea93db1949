import { spawn, type ChildProcess } from "node:child_process";
import { bin, root, type TestServer } from "./server.js";

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Extra environment (WORKERBASE_URL and WORKERBASE_API_KEY come from the server). */
  env?: Record<string, string | undefined>;
  /** Text written to stdin, which is then closed. */
  input?: string;
  cwd?: string;
}

/** The environment of a CLI run: no WORKERBASE_* or colour settings leak in from outside. */
export function cliEnv(
  server: TestServer | undefined,
  extra: Record<string, string | undefined> = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("WORKERBASE_") && k !== "NO_COLOR" && k !== "FORCE_COLOR") env[k] = v;
  }
  if (server) {
    env.WORKERBASE_URL = server.url;
    env.WORKERBASE_API_KEY = server.key;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Runs `node bin/workerbase.js ...args` to completion. */
export function cli(
  server: TestServer | undefined,
  args: string[],
  options: CliOptions = {},
): Promise<CliResult> {
  const child = spawn(process.execPath, [bin, ...args], {
    env: cliEnv(server, options.env),
    cwd: options.cwd ?? root,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  child.stdin!.end(options.input ?? "");
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

/** Starts a long-running CLI command (`logs --follow`, `dev`); output accumulates as it comes. */
export function cliBackground(
  server: TestServer | undefined,
  args: string[],
  options: CliOptions = {},
): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [bin, ...args], {
    env: cliEnv(server, options.env),
    cwd: options.cwd ?? root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((resolve) =>
    child.once("close", (code) => resolve(code)),
  );
  return { child, output: () => out, exited };
}

/** Waits until `output()` matches, failing with the output so far after `timeoutMs`. */
export async function waitForOutput(
  output: () => string,
  pattern: RegExp,
  timeoutMs = 10_000,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = output().match(pattern);
    if (match) return match;
    if (Date.now() > deadline) throw new Error(`no ${pattern} in output:\n${output()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Parses a CLI run's stdout as JSON, showing its output when it is not. */
export function json(result: CliResult): any {
  try {
    return JSON.parse(result.stdout);
  } catch {
    throw new Error(`not JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
}
