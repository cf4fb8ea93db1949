import { CliError, UsageError, stringFlag } from "./args.js";
import { readStdin, readUserBytes, seg, type Command } from "./command.js";
import { mask, platform } from "./http.js";
import { err } from "./output.js";
import { notFound } from "./functions.js";

/** `-H 'Name: value'` into a header pair. */
function header(text: string): [string, string] {
  const colon = text.indexOf(":");
  const name = colon > 0 ? text.slice(0, colon).trim() : "";
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
    throw new UsageError(`-H needs "Name: value", got "${text}"`);
  }
  return [name.toLowerCase(), text.slice(colon + 1).trim()];
}

/** `--data` as curl reads it: the text itself, `@file`, or `@-` for stdin. */
async function data(value: string): Promise<Buffer> {
  if (value === "@-") return readStdin();
  if (value.startsWith("@")) return readUserBytes(value.slice(1), "data file");
  return Buffer.from(value);
}

function looksLikeJson(body: Buffer): boolean {
  try {
    JSON.parse(body.toString("utf8"));
    return true;
  } catch {
    return false;
  }
}

export const invokeCommand: Command = {
  name: "functions invoke",
  usage: "<fn> [--data JSON|@file] [-X METHOD] [-H 'K: V'] [--path /sub/path?q=1]",
  summary: "call a deployed function; prints the body, the status goes to stderr",
  args: [1, 1],
  flags: {
    data: {
      type: "string",
      alias: "d",
      value: "JSON|@file",
      help: "request body (@- reads stdin)",
    },
    request: { type: "string", alias: "X", value: "METHOD", help: "HTTP method (default POST)" },
    header: { type: "list", alias: "H", value: "'K: V'", help: "a request header (repeatable)" },
    path: { type: "string", value: "/sub", help: "sub-path and query after /invoke" },
  },
  async run(args) {
    const fn = args.positionals[0];
    const api = platform(args);
    const method = (stringFlag(args, "request") ?? "POST").toUpperCase();
    if (!/^[A-Z]+$/.test(method)) throw new UsageError(`-X needs an HTTP method, got "${method}"`);
    const headers = Object.fromEntries(((args.flags.header as string[]) ?? []).map(header));
    const raw = stringFlag(args, "data");
    const body = raw === undefined ? undefined : await data(raw);
    if (body && (method === "GET" || method === "HEAD")) {
      throw new UsageError(`a ${method} request cannot have a body; drop --data or use -X POST`);
    }
    if (body && !headers["content-type"]) {
      headers["content-type"] = looksLikeJson(body)
        ? "application/json"
        : "text/plain;charset=utf-8";
    }
    let sub = stringFlag(args, "path") ?? "";
    if (sub && !sub.startsWith("/") && !sub.startsWith("?")) sub = `/${sub}`;
    const started = performance.now();
    const res = await api.send(method, `/functions/${seg(fn)}/invoke${sub}`, { body, headers });
    const invocation = res.headers.get("x-invocation-id");
    if (!invocation) {
      // Answered by the platform before the function ran: say why in one line.
      const failure = await api.failure(
        res,
        `${notFound(fn)} (or not visible to the API key ${mask(api.credential.value)} from ${api.credential.source})`,
      );
      throw new CliError(`${failure.message}`);
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    process.stdout.write(bytes);
    if (process.stdout.isTTY && bytes.length > 0 && bytes[bytes.length - 1] !== 0x0a) {
      process.stdout.write("\n");
    }
    const ms = Math.round(performance.now() - started);
    const line = `HTTP ${res.status} ${res.statusText} · ${ms} ms · invocation ${invocation}`;
    err.line(res.ok ? err.paint.dim(line) : err.paint.red(line));
    return res.ok ? 0 : 1;
  },
};
