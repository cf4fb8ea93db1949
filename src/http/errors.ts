/** Every error the API may answer with: a stable code, its HTTP status and a default sentence. */
export const errorKinds = {
  BAD_JSON: { status: 400, message: "The request body is not valid JSON" },
  INVALID_INPUT: { status: 400, message: "The request is invalid" },
  UNAUTHORIZED: { status: 401, message: "Invalid or missing API key" },
  ADMIN_UNAUTHORIZED: { status: 401, message: "Invalid or missing admin key" },
  NOT_FOUND: { status: 404, message: "Not found" },
  FUNCTION_NOT_FOUND: { status: 404, message: "Function not found" },
  CONFLICT: { status: 409, message: "Conflict" },
  TOO_LARGE: { status: 413, message: "The request body is too large" },
  NOT_ALLOWED: { status: 422, message: "Not allowed in this state" },
  RATE_LIMITED: { status: 429, message: "Too many requests" },
  INTERNAL: { status: 500, message: "Internal server error" },
  UNAVAILABLE: { status: 503, message: "Service unavailable" },
} as const;

export type ErrorKind = keyof typeof errorKinds;

/** A known error: renders itself as `{"error": sentence, details?}` with its status. */
export class AppError extends Error {
  readonly kind: ErrorKind;
  readonly status: number;
  readonly details?: unknown;
  readonly headers?: Record<string, string>;

  constructor(
    kind: ErrorKind,
    message?: string,
    details?: unknown,
    headers?: Record<string, string>,
  ) {
    super(message ?? errorKinds[kind].message);
    this.kind = kind;
    this.status = errorKinds[kind].status;
    this.details = details;
    this.headers = headers;
  }

  body(): { error: string; details?: unknown } {
    return this.details === undefined
      ? { error: this.message }
      : { error: this.message, details: this.details };
  }
}

/** True for a failure that only means the client went away (closed the connection mid-request). */
export function isClientAbort(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const { code, message } = err as NodeJS.ErrnoException;
  return (
    (code === "ECONNRESET" && message === "aborted") ||
    code === "ERR_STREAM_PREMATURE_CLOSE" ||
    code === "ERR_STREAM_DESTROYED"
  );
}

/**
 * How a request's failure is logged: one line when the client went away (an expected event,
 * not a bug), the stack otherwise. `what` names the request: "POST /platform/v1/functions".
 */
export function failureLine(what: string, err: unknown): string {
  if (isClientAbort(err))
    return `${what}: the client closed the connection before the answer (${(err as Error).message})`;
  return `${what} failed: ${(err as Error)?.stack ?? err}`;
}
