import fs from "node:fs";
import path from "node:path";
import { CliError, UsageError, stringFlag, type ParsedArgs } from "./args.js";

/** A key and where it came from, so an error can say which one was used. */
export interface Credential {
  value: string;
  source: string;
}

export const defaultUrl = "http://127.0.0.1:8787";

/** Enough of a key to tell it apart (its display prefix), never the whole of it. */
export function mask(key: string): string {
  return key.length > 12 ? `${key.slice(0, 8)}…` : `${key.slice(0, 2)}…`;
}

/** The server's base URL from `--url` or `WORKERBASE_URL`. */
export function serverUrl(args: ParsedArgs): string {
  const url = stringFlag(args, "url") ?? process.env.WORKERBASE_URL ?? defaultUrl;
  if (!/^https?:\/\/[^/]+/.test(url)) {
    throw new UsageError(`--url must be an http:// or https:// URL, got "${url}"`);
  }
  return url.replace(/\/+$/, "");
}

/** The local data dir, where `serve` saves the first key. */
export function dataDir(args: ParsedArgs): string {
  return path.resolve(
    stringFlag(args, "data-dir") ?? process.env.WORKERBASE_DATA_DIR ?? "./.workerbase",
  );
}

/** The project key: `--api-key`, else `WORKERBASE_API_KEY`, else the saved credentials file. */
export function apiKey(args: ParsedArgs): Credential {
  const flag = stringFlag(args, "api-key");
  if (flag) return { value: flag, source: "--api-key" };
  if (process.env.WORKERBASE_API_KEY) {
    return { value: process.env.WORKERBASE_API_KEY, source: "WORKERBASE_API_KEY" };
  }
  const file = path.join(dataDir(args), "credentials.json");
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    throw new CliError(
      `no API key: pass --api-key or set WORKERBASE_API_KEY (no saved key in ${file})`,
    );
  }
  try {
    const saved = JSON.parse(text) as { api_key?: unknown };
    if (typeof saved.api_key === "string" && saved.api_key) {
      return { value: saved.api_key, source: file };
    }
  } catch {
    // reported below
  }
  throw new CliError(`no API key: ${file} has no "api_key"; pass --api-key instead`);
}

/** The operator key: `--admin-key`, else `WORKERBASE_ADMIN_KEY`. */
export function adminKey(args: ParsedArgs): Credential {
  const flag = stringFlag(args, "admin-key");
  if (flag) return { value: flag, source: "--admin-key" };
  if (process.env.WORKERBASE_ADMIN_KEY) {
    return { value: process.env.WORKERBASE_ADMIN_KEY, source: "WORKERBASE_ADMIN_KEY" };
  }
  throw new CliError("no admin key: pass --admin-key or set WORKERBASE_ADMIN_KEY");
}

export interface CallOptions {
  json?: unknown;
  body?: Buffer | string;
  headers?: Record<string, string>;
  query?: Record<string, string | number | undefined>;
  /** What a 404 means for this call, such as `function "x" not found`. */
  notFound?: string;
}

/** Talks to one API of the server (platform or admin) with one key; errors become one line. */
export class Client {
  constructor(
    readonly base: string,
    readonly prefix: string,
    readonly credential: Credential,
    private keyHeader: string,
    private keyName: string,
  ) {}

  url(route: string, query?: CallOptions["query"]): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
    const search = params.size > 0 ? `?${params}` : "";
    return `${this.base}${this.prefix}${route}${search}`;
  }

  /** Sends a request and returns whatever the server answered; only an unreachable server throws. */
  async send(method: string, route: string, init: CallOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { [this.keyHeader]: this.credential.value };
    let body: Uint8Array<ArrayBuffer> | string | undefined =
      typeof init.body === "string" || init.body === undefined
        ? init.body
        : new Uint8Array(init.body);
    if (init.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(init.json);
    }
    Object.assign(headers, init.headers);
    try {
      return await fetch(this.url(route, init.query), { method, headers, body });
    } catch {
      throw new CliError(`cannot reach ${this.base}: is "workerbase serve" running?`);
    }
  }

  /** Sends a request and returns its JSON; any non-2xx answer becomes a CliError. */
  async call<T = any>(method: string, route: string, init: CallOptions = {}): Promise<T> {
    const res = await this.send(method, route, init);
    if (res.ok) {
      if (res.status === 204) return undefined as T;
      const text = await res.text();
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new CliError(`unexpected answer from ${this.base}: HTTP ${res.status}, not JSON`);
      }
    }
    throw await this.failure(res, init.notFound, route);
  }

  /** The one-line error for a non-2xx answer. */
  async failure(res: Response, notFound?: string, route?: string): Promise<CliError> {
    let message: string | undefined;
    try {
      const body = (await res.json()) as { error?: unknown };
      if (typeof body.error === "string") message = body.error;
    } catch {
      // not JSON: described by its status below
    }
    if (res.status === 401) {
      return new CliError(
        `the server at ${this.base} refused the ${this.keyName} ${mask(this.credential.value)} ` +
          `(from ${this.credential.source})${message ? `: ${message}` : ""}`,
      );
    }
    if (res.status === 404 && notFound && (!message || /not found/i.test(message))) {
      return new CliError(notFound);
    }
    if (res.status === 429) {
      const retry = res.headers.get("retry-after");
      return new CliError(`${message ?? "rate limited"}${retry ? ` (retry in ${retry} s)` : ""}`);
    }
    if (res.status === 404 && (message === undefined || message === "Not found")) {
      // The route itself is missing: an older server, or not a Workerbase server at all.
      const what = route ? `${this.prefix}${route.split("?")[0]}` : "this route";
      return new CliError(`the server at ${this.base} does not offer ${what} (HTTP 404)`);
    }
    return new CliError(message ?? `the server answered HTTP ${res.status}`);
  }
}

/** The project API at /platform/v1 with the project key. */
export function platform(args: ParsedArgs): Client {
  return new Client(serverUrl(args), "/platform/v1", apiKey(args), "x-api-key", "API key");
}

/** The operator API at /admin/v1 with the admin key. */
export function admin(args: ParsedArgs): Client {
  return new Client(serverUrl(args), "/admin/v1", adminKey(args), "x-admin-key", "admin key");
}
