import { session } from "./session";

export const apiBase = "/platform/v1";

export interface FieldIssue {
  field: string;
  message: string;
}

/** An error answer of the API: its status, its sentence, and the fields it names. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: FieldIssue[] = [],
  ) {
    super(message);
  }
}

type Listener = () => void;
const unauthorized = new Set<Listener>();

/** Called whenever the server refuses the key (the page stays as it is). */
export function onUnauthorized(listener: Listener): () => void {
  unauthorized.add(listener);
  return () => unauthorized.delete(listener);
}

async function errorOf(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`.trim();
  let details: FieldIssue[] = [];
  try {
    const body = await res.json();
    if (typeof body?.error === "string") message = body.error;
    if (Array.isArray(body?.details)) details = body.details;
  } catch {
    // not JSON: keep the status line
  }
  if (res.status === 401) for (const listener of unauthorized) listener();
  return new ApiError(res.status, message, details);
}

/** A raw request to the platform API with the session's key; throws ApiError unless 2xx. */
export async function request(
  method: string,
  path: string,
  init: { body?: BodyInit; headers?: Record<string, string>; key?: string } = {},
): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(apiBase + path, {
      method,
      headers: { "x-api-key": init.key ?? session.key() ?? "", ...init.headers },
      body: init.body,
    });
  } catch {
    throw new ApiError(0, "Could not reach the server; check that it is running");
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

/** A JSON request; resolves with the parsed body (undefined for 204). */
export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await request(method, path, {
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { "content-type": "application/json" },
  });
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export type Language = "javascript" | "typescript";

export interface Fn {
  id: string;
  name: string;
  slug: string;
  description: string | null;
  code?: string;
  /** Applies at the next deploy, like `code`; absent means javascript (an older server). */
  language?: Language;
  version: number;
  /** The version invocations run; `version` unless a rollback moved it; null before a deploy. */
  live_version: number | null;
  status: "draft" | "deploying" | "deployed" | "error";
  last_deployed_at: string | null;
  deploy_error: string | null;
  runtime_config: { timeout: number; memory: number; compatibility_flags?: string[] };
  endpoint_url: string;
  public_endpoint: boolean;
  invoke_response_mode: "passthrough" | "wrapped";
  schedules: Schedule[];
  created_at: string;
  updated_at: string;
}

/** The version a function's invocations run (null before its first deploy). */
export const liveVersion = (fn: Fn): number | null => fn.live_version ?? (fn.version || null);

export interface Schedule {
  cron: string;
  timezone: string;
  body: unknown;
  next_run_at: string | null;
}

/** One deployed version, as GET /functions/{id}/versions lists it (code only when asked). */
export interface Version {
  version: number;
  language: string;
  runtime_config: Fn["runtime_config"];
  invoke_response_mode: Fn["invoke_response_mode"];
  message: string | null;
  created_at: string;
  live: boolean;
  code?: string;
}

export interface DeployedCode {
  version: number | null;
  code: string | null;
  runtime_config: Fn["runtime_config"] | null;
  deployed_at: string | null;
}

export interface LogLine {
  level: string;
  message: string;
  timestamp: string | number;
}

export interface Invocation {
  id: string;
  status: "success" | "failed";
  status_code: number;
  duration_ms: number;
  request_headers: Record<string, string>;
  request_body: string | null;
  response_body: string | null;
  error_message: string | null;
  /** An uncaught error's stack, the user's frames only. */
  error_stack?: string | null;
  /** What was called: the method and the part after `/invoke`, with the query. */
  method?: string;
  path?: string;
  logs: LogLine[];
  trigger: string;
  version?: number | null;
  created_at: string;
}

export interface Secret {
  name: string;
  type: "text" | "json" | "inherited";
  created_at: string;
}

export const fnPath = (id: string) => `/functions/${encodeURIComponent(id)}`;
