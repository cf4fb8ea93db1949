// The main module of every loaded function: runs the user's handler for one request and
// answers the supervisor with a frame: JSON metadata (status, headers, console lines, error),
// then the response body. The host splits the frame, validates the metadata against a schema
// and enforces the limits on what actually crosses; what this module checks is only a fast
// path for honest code. It uses the built-ins captured in workerbase-setup.js, before the
// function's own module ran.
import { addLine, withInvocation, primordials as P, limits } from "./workerbase-setup.js";
import { buildEnv } from "./workerbase-env.js";
import * as user from "./function.js";

const encoder = new TextEncoder();
const INVOCATION_HEADER = "x-workerbase-invocation";
const CRON_HEADER = "x-workerbase-cron";
const SCHEDULED_TIME_HEADER = "x-workerbase-scheduled-time";
const onlyScheduled =
  "This function runs only on schedule: its code defines `scheduled` but no `handler` (or `fetch`), so it does not answer HTTP calls";
let userEnv;

function frame(meta, body) {
  const head = P.Encode(encoder, P.JSONStringify(meta));
  const headBytes = P.TypedArrayLength(head);
  let out = head;
  const bodyBytes = body ? P.ByteLength(body) : 0;
  if (bodyBytes > 0) {
    out = new P.Uint8Array(headBytes + bodyBytes);
    P.TypedArraySet(out, head, 0);
    P.TypedArraySet(out, new P.Uint8Array(body), headBytes);
  }
  const headers = { "x-workerbase-meta-length": String(headBytes) };
  // Tells the supervisor that console lines of this invocation will follow (ctx.waitUntil).
  if (meta.waiting) headers["x-workerbase-waiting"] = "1";
  return new P.Response(out, { headers });
}

function describe(value) {
  if (value === undefined) return "undefined";
  if (value === null) return "null";
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "Object"})`;
  return `a ${typeof value}`;
}

function messageOf(err) {
  if (err instanceof Error) return err.message ? `${err.name}: ${err.message}` : err.name;
  try {
    return typeof err === "string" ? err : (JSON.stringify(err) ?? String(err));
  } catch {
    return String(err);
  }
}

function headerList(headers) {
  const out = [];
  const it = P.HeadersEntries(headers);
  for (let step = P.IteratorNext(it); !step.done; step = P.IteratorNext(it)) {
    P.ArrayPush(out, [step.value[0], step.value[1]]);
  }
  return out;
}

/** The request the user's handler sees: the supervisor's request without our own headers. */
function userRequest(request) {
  const headers = new P.Headers(P.RequestHeaders(request));
  P.HeadersDelete(headers, INVOCATION_HEADER);
  return new P.Request(request, { headers });
}

/**
 * The entrypoints of the user's module, in either shape it may have (CONTRACT 3.3): Workers
 * module syntax (`export default { fetch, scheduled }`, also an app object whose `fetch` is a
 * property or a bound method, called on the object) or the hosted original's top-level
 * `handler` and `scheduled`. Read on every call: the default export may be built lazily.
 */
function entrypoint(name) {
  const mod = user.default;
  if (mod !== undefined) {
    const fn = mod === null ? undefined : mod[name];
    return typeof fn === "function" ? (...args) => P.Apply(fn, mod, args) : null;
  }
  const fn = name === "fetch" ? user.handler : user.scheduled;
  return typeof fn === "function" ? fn : null;
}

/**
 * The `ctx` both shapes receive, Workers' ExecutionContext. `waitUntil` work is tracked per
 * invocation: the answer goes out at once, and `afterResponse` keeps the invocation alive
 * until the work settles (or the timeout), then sends the console lines written meanwhile.
 */
function contextFor(state) {
  return P.ObjectFreeze({
    waitUntil(promise) {
      P.ArrayPush(state.pending, P.PromiseResolve(promise));
    },
    // There is no origin behind a function to fall back to: accepted, does nothing.
    passThroughOnException() {},
    props: {},
  });
}

/**
 * Waits for an invocation's `waitUntil` work (also work that work adds), at most the
 * function's timeout; a rejection becomes an error line. Then hands the lines written after
 * the answer to the supervisor, which adds them to the invocation's record.
 */
async function afterResponse(state, env, sent) {
  let timer;
  const timedOut = new P.Promise((resolve) => {
    timer = P.SetTimeout(() => resolve(true), limits.timeoutMs);
  });
  const settle = async () => {
    let done = 0;
    while (done < state.pending.length) {
      const batch = P.ArraySlice(state.pending, done);
      done = state.pending.length;
      const results = await P.PromiseAllSettled(batch);
      for (const result of results)
        if (result.status === "rejected")
          addLine(state, "error", `Uncaught (in ctx.waitUntil) ${messageOf(result.reason)}`);
    }
    return false;
  };
  if (await P.PromiseRace([settle(), timedOut]))
    addLine(
      state,
      "warn",
      `[workerbase] ctx.waitUntil work was still running when the function's timeout of ${limits.timeoutMs / 1000} s ended; it was cut off`,
    );
  P.ClearTimeout(timer);
  await env.__WB_LATE.fetch("http://late/", {
    method: "POST",
    headers: { [INVOCATION_HEADER]: state.token, "content-type": "application/json" },
    body: P.JSONStringify(P.ArraySlice(state.lines, sent)),
  });
}

export default {
  async fetch(request, env, runtimeCtx) {
    const incoming = P.RequestHeaders(request);
    if (P.HeadersGet(incoming, "x-workerbase-probe") !== null) {
      const mod = user.default;
      const moduleShape = mod !== undefined;
      return frame(
        {
          probe: true,
          shape: moduleShape ? "module" : "handler",
          exported: typeof mod,
          handler: moduleShape ? typeof mod?.fetch : typeof user.handler,
          scheduled: moduleShape ? typeof mod?.scheduled : typeof user.scheduled,
        },
        null,
      );
    }
    // Only the supervisor lets this header through, and only on a schedule tick.
    const cron = P.HeadersGet(incoming, CRON_HEADER);
    const token = P.HeadersGet(incoming, INVOCATION_HEADER) ?? "";
    userEnv ??= buildEnv(env);
    return withInvocation(token, async (state) => {
      const { meta, body } = await run(state, request, incoming, cron);
      meta.logs = P.ArraySlice(state.lines, 0);
      if (state.pending.length > 0) {
        meta.waiting = true;
        runtimeCtx.waitUntil(afterResponse(state, env, meta.logs.length));
      }
      return frame(meta, body);
    });
  },
};

/** Runs the user's entrypoint for one call: the frame's metadata and the body. */
async function run(state, request, incoming, cron) {
  let meta;
  let body = null;
  const ctx = contextFor(state);
  try {
    const scheduled = cron !== null ? entrypoint("scheduled") : null;
    if (scheduled) {
      // As on Cloudflare: the event's time in epoch ms; the result is ignored.
      const at = P.HeadersGet(incoming, SCHEDULED_TIME_HEADER) ?? "";
      await scheduled(
        { type: "scheduled", cron, scheduledTime: P.DateParse(at), noRetry() {} },
        userEnv,
        ctx,
      );
      return { meta: { status: 200, headers: [] }, body: null };
    }
    const handler = entrypoint("fetch");
    if (!handler) return { meta: { kind: "no_handler", error: onlyScheduled }, body: null };
    const result = await handler(userRequest(request), userEnv, ctx);
    if (P.isPrototypeOf(P.Response.prototype, result)) {
      body = await P.ResponseArrayBuffer(result);
      if (P.ByteLength(body) > limits.maxResponseBodyBytes) {
        meta = {
          kind: "too_large",
          error: `The response body is larger than ${limits.maxResponseBodyBytes} bytes`,
        };
        body = null;
      } else {
        meta = {
          status: P.ResponseStatus(result),
          headers: headerList(P.ResponseHeaders(result)),
        };
      }
    } else {
      meta = {
        kind: "not_response",
        error: `The handler returned ${describe(result)} instead of a Response`,
      };
    }
  } catch (err) {
    meta = { kind: "threw", error: messageOf(err) };
    // The host keeps the user's frames of it (the wrapper's are cut there).
    const stack = err !== null && typeof err === "object" ? err.stack : undefined;
    if (typeof stack === "string") meta.stack = stack;
  }
  return { meta, body };
}
