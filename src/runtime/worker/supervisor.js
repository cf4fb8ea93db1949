// The supervisor worker: runs inside every workerd process. It accepts invocations from the
// host (authenticated by a per-process token), loads each function's isolate through the
// Worker Loader, and exports the capability entrypoints (egress, KV, DB) that loaded
// functions receive. It holds no state of its own: code and secrets come from the host.
import { WorkerEntrypoint } from "cloudflare:workers";
import { classifyAddress } from "./address.js";
import mainSource from "./loaded-main.txt";
import setupSource from "./loaded-setup.txt";
import envSource from "./loaded-env.txt";
import kvSource from "./loaded-kv.txt";
import d1Source from "./loaded-d1.txt";

const TOKEN_HEADER = "x-workerbase-token";
const INVOCATION_HEADER = "x-workerbase-invocation";
const SUBREQUEST_HEADER = "x-workerbase-subrequest";
const TICK_HEADERS = new Set(["x-workerbase-cron", "x-workerbase-scheduled-time"]);
let loadedIsolates = 0;

/**
 * Invocations running now, by the random token each carries into its isolate, with the
 * number of fetches it made. The limit is enforced here, outside the tenant's isolate: the
 * token only identifies the invocation (a function that forges one can only spend the budget
 * of another of its own invocations in flight).
 */
const running = new Map();
let maxSubrequests = 50;

/**
 * Invocations whose answer went out while their `ctx.waitUntil` work goes on: by token, the
 * record the host keeps waiting for their later console lines, and when to give up on them.
 */
const late = new Map();
/** The longest timeout a function may have (300 s), and some slack. */
const lateExpiryMs = 310_000;

function sweepLate(now) {
  for (const [token, entry] of late) {
    if (entry.expires > now) continue;
    late.delete(token);
    running.delete(token);
  }
}

function hostFetch(env, path, init = {}) {
  const headers = new Headers(init.headers);
  headers.set(TOKEN_HEADER, env.TOKEN);
  return env.HOST.fetch("http://host" + path, { ...init, headers });
}

// Non-public literals (loopback, private, link-local, reserved, and IPv6 forms carrying such an
// IPv4 address: address.js) and localhost names are refused with a sentence, before workerd's
// own network policy (which also covers names that resolve to such addresses) answers tersely.
function literalPrivateHost(hostname) {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const name = h.replace(/\.$/, "");
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  const address = classifyAddress(h);
  return address !== null && !address.public;
}

const allowHint =
  "to let functions reach loopback and private addresses in development, start the server with --allow-private-network";

/** Every outbound fetch of a loaded function passes here. */
export class Egress extends WorkerEntrypoint {
  async fetch(request) {
    const url = new URL(request.url);
    const invocation = running.get(request.headers.get(SUBREQUEST_HEADER) ?? "");
    if (!invocation) {
      throw new Error("fetch is only possible while the function handles a request");
    }
    if (++invocation.subrequests > maxSubrequests) {
      throw new Error(
        `Too many subrequests: a function may make at most ${maxSubrequests} fetches per invocation`,
      );
    }
    request = new Request(request);
    request.headers.delete(SUBREQUEST_HEADER);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new Error(`fetch to ${url.protocol} URLs is not supported`);
    }
    if (this.env.ALLOW_PRIVATE !== "1" && literalPrivateHost(url.hostname)) {
      throw new Error(
        `fetch to ${url.host} was refused: functions may only reach public addresses (${allowHint})`,
      );
    }
    try {
      return await this.env.INTERNET.fetch(request);
    } catch (err) {
      throw new Error(
        `fetch to ${url.host} failed: the address is not public or could not be reached (${err && err.message}; ${allowHint})`,
      );
    }
  }
}

/**
 * env.KV of a loaded function: bound to one project through props the function cannot see.
 * loaded/kv.js sends each operation as a request (`http://kv/{op}`); it goes on to the host
 * with the project and the token added, and the host's answer comes back as it is.
 */
export class KvBinding extends WorkerEntrypoint {
  async fetch(request) {
    const headers = new Headers(request.headers);
    headers.set(TOKEN_HEADER, this.env.TOKEN);
    headers.set("x-workerbase-project", this.ctx.props.projectId);
    const op = new URL(request.url).pathname.slice(1);
    return this.env.HOST.fetch("http://host/__wb/kv/" + op, {
      method: "POST",
      headers,
      body: request.body,
    });
  }
}

/**
 * env.DB of a loaded function: bound to one project through props the function cannot see.
 * `payload` is a D1 request (loaded/d1.js); resolves to the host's JSON answer as text,
 * `{results, bookmark}` or `{error}` (the shim adds D1's prefixes). Each request is bounded
 * by the function's own timeout. `op` comes from the tenant's isolate: only a known one goes
 * on, so that no path (`../kv/list`) reaches another of the host's handlers.
 */
export class DbBinding extends WorkerEntrypoint {
  /** The operations loaded/d1.js asks for. */
  static OPS = new Set(["query"]);

  async call(op, payload) {
    if (typeof op !== "string" || !DbBinding.OPS.has(op)) {
      const name = JSON.stringify(String(op).slice(0, 64));
      return JSON.stringify({ error: `unknown database operation ${name}` });
    }
    let res;
    try {
      res = await hostFetch(this.env, "/__wb/db/" + op, {
        method: "POST",
        headers: {
          "x-workerbase-project": this.ctx.props.projectId,
          "x-workerbase-timeout-ms": String(this.ctx.props.timeoutMs ?? ""),
          "content-type": "application/json",
        },
        body: JSON.stringify(payload),
      });
    } catch (err) {
      return JSON.stringify({ error: `Network connection lost. (${err && err.message})` });
    }
    const text = await res.text();
    if (res.ok || res.status === 400) return text;
    return JSON.stringify({ error: `the database answered ${res.status}: ${text}` });
  }
}

/**
 * Where a loaded function's wrapper sends the console lines written after its answer
 * (`ctx.waitUntil` work): they go on to the host for the invocation's record. The token only
 * finds invocations of this process that are still waiting; each is taken once.
 */
export class LateLines extends WorkerEntrypoint {
  async fetch(request) {
    const token = request.headers.get(INVOCATION_HEADER) ?? "";
    const entry = late.get(token);
    if (!entry) return new Response("unknown invocation", { status: 404 });
    late.delete(token);
    running.delete(token);
    return hostFetch(this.env, "/__wb/late/" + encodeURIComponent(entry.recordId), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: request.body,
    });
  }
}

async function loadCode(env, ctx, deploymentId, projectId) {
  let lastError;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const res = await hostFetch(env, "/__wb/code/" + encodeURIComponent(deploymentId));
      if (res.ok) {
        const code = await res.json();
        loadedIsolates++;
        maxSubrequests = code.limits.maxSubrequests;
        const flags = new Set(code.compatibilityFlags);
        if (!flags.has("nodejs_compat")) flags.add("nodejs_als");
        return {
          compatibilityDate: code.compatibilityDate,
          compatibilityFlags: [...flags],
          mainModule: "workerbase-main.js",
          modules: {
            "workerbase-main.js": mainSource,
            "workerbase-setup.js": setupSource,
            "workerbase-env.js": envSource,
            "workerbase-kv.js": kvSource,
            "workerbase-d1.js": d1Source,
            "workerbase-limits.js": `export default Object.freeze(${JSON.stringify({ ...code.limits, timeoutMs: code.timeoutMs })});`,
            [code.moduleName]: code.code,
          },
          env: {
            ...code.secrets,
            __WB_KV: ctx.exports.KvBinding({ props: { projectId } }),
            __WB_DB: ctx.exports.DbBinding({ props: { projectId, timeoutMs: code.timeoutMs } }),
            __WB_LATE: ctx.exports.LateLines({ props: {} }),
          },
          globalOutbound: ctx.exports.Egress({ props: {} }),
        };
      }
      lastError = new Error(`the host answered ${res.status} for the function's code`);
      if (res.status === 404) break;
    } catch (err) {
      lastError = err;
    }
    await new Promise((resolve) => setTimeout(resolve, 50 * (attempt + 1)));
  }
  throw lastError;
}

function failure(kind, message) {
  const meta = new TextEncoder().encode(JSON.stringify({ kind, error: message, logs: [] }));
  return new Response(meta, { headers: { "x-workerbase-meta-length": String(meta.byteLength) } });
}

export default {
  async fetch(request, env, ctx) {
    if (request.headers.get(TOKEN_HEADER) !== env.TOKEN)
      return new Response("forbidden", { status: 403 });
    // The host always calls /__wb/...: cut the path out instead of parsing a URL per request.
    const url = request.url;
    const path = url.slice(url.indexOf("/", url.indexOf("//") + 2));
    if (path === "/__wb/health") return Response.json({ ok: true, loadedIsolates });
    if (path !== "/__wb/invoke") return new Response("not found", { status: 404 });

    const workerId = request.headers.get("x-workerbase-worker");
    const deploymentId = request.headers.get("x-workerbase-deployment");
    const projectId = request.headers.get("x-workerbase-project");
    const method = request.headers.get("x-workerbase-method") || "GET";
    const headers = new Headers();
    // A schedule tick's own headers pass only when the host marks the call as a tick.
    const tick = request.headers.has("x-workerbase-tick");
    for (const [name, value] of request.headers) {
      if (!name.startsWith("x-workerbase-") || (tick && TICK_HEADERS.has(name)))
        headers.append(name, value);
    }
    if (request.headers.has("x-workerbase-probe")) headers.set("x-workerbase-probe", "1");
    const token = crypto.randomUUID();
    headers.set(INVOCATION_HEADER, token);
    const hasBody = method !== "GET" && method !== "HEAD";
    const inner = new Request(request.headers.get("x-workerbase-url"), {
      method,
      headers,
      body: hasBody ? request.body : null,
    });
    const stub = env.LOADER.get(workerId, () => loadCode(env, ctx, deploymentId, projectId));
    const recordId = request.headers.get("x-workerbase-record");
    running.set(token, { subrequests: 0 });
    // Known before the call: quick waitUntil work may send its lines before the answer is back.
    if (recordId) {
      const now = Date.now();
      sweepLate(now);
      late.set(token, { recordId, expires: now + lateExpiryMs });
    }
    let waiting = false;
    try {
      const res = await stub.getEntrypoint().fetch(inner);
      // Its waitUntil work goes on: fetches stay counted, later lines go to the record.
      waiting = res.headers.has("x-workerbase-waiting") && recordId !== null;
      return res;
    } catch (err) {
      const message = String((err && err.message) || err);
      const kind = message.startsWith("Failed to start Worker") ? "load" : "internal";
      return failure(kind, message);
    } finally {
      if (!waiting) {
        running.delete(token);
        // Unless the lines already came (and took the entry), nothing more will.
        late.delete(token);
      }
    }
  },
};
