// The main module of every loaded function: runs the user's handler for one request and
// answers the supervisor with a frame: JSON metadata (status, headers, console lines, error),
// then the response body. The host splits the frame.
import { withInvocation } from "./workerbase-setup.js";
import { buildEnv } from "./workerbase-env.js";
import * as user from "./function.js";

const encoder = new TextEncoder();
let userEnv;

function frame(meta, body) {
  const head = encoder.encode(JSON.stringify(meta));
  let out = head;
  if (body && body.byteLength > 0) {
    out = new Uint8Array(head.byteLength + body.byteLength);
    out.set(head, 0);
    out.set(new Uint8Array(body), head.byteLength);
  }
  return new Response(out, {
    headers: { "x-workerbase-meta-length": String(head.byteLength) },
  });
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

export default {
  async fetch(request, env) {
    if (request.headers.has("x-workerbase-probe")) {
      return frame({ probe: true, handler: typeof user.handler }, null);
    }
    userEnv ??= buildEnv(env);
    const limits = env.__WB_LIMITS;
    return withInvocation(limits, async (state) => {
      let meta;
      let body = null;
      try {
        const result = await user.handler(request, userEnv);
        if (result instanceof Response) {
          body = await result.arrayBuffer();
          if (body.byteLength > limits.maxResponseBodyBytes) {
            meta = {
              kind: "too_large",
              error: `The response body is larger than ${limits.maxResponseBodyBytes} bytes`,
            };
            body = null;
          } else {
            meta = { status: result.status, headers: [...result.headers] };
          }
        } else {
          meta = {
            kind: "not_response",
            error: `The handler returned ${describe(result)} instead of a Response`,
          };
        }
      } catch (err) {
        meta = { kind: "threw", error: messageOf(err) };
      }
      meta.logs = state.lines;
      return frame(meta, body);
    });
  },
};
