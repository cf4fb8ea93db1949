// The supervisor worker: runs inside every workerd process. It accepts invocations from the
// host (authenticated by a per-process token), loads each function's isolate through the
// Worker Loader, and exports the capability entrypoints (egress, KV, DB) that loaded
// functions receive. It holds no state of its own: code and secrets come from the host.
import { WorkerEntrypoint } from "cloudflare:workers";
import mainSource from "./loaded-main.txt";
import setupSource from "./loaded-setup.txt";
import envSource from "./loaded-env.txt";

const TOKEN_HEADER = "x-workerbase-token";
let loadedIsolates = 0;

function hostFetch(env, path, init = {}) {
  const headers = new Headers(init.headers);
  headers.set(TOKEN_HEADER, env.TOKEN);
  return env.HOST.fetch("http://host" + path, { ...init, headers });
}

// Loopback, private and link-local literals are refused with a sentence, before workerd's own
// network policy (which also covers names that resolve to such addresses) answers tersely.
function literalPrivateHost(hostname) {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost") || h === "::1" || h === "::" || h === "0.0.0.0")
    return true;
  if (/^(fc|fd|fe8|fe9|fea|feb)[0-9a-f]*:/.test(h) || h.startsWith("::ffff:")) return true;
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(h);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return (
    a === 0 ||
    a === 10 ||
    a === 127 ||
    (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 100 && b >= 64 && b <= 127) ||
    a >= 224
  );
}

/** Every outbound fetch of a loaded function passes here. */
export class Egress extends WorkerEntrypoint {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new Error(`fetch to ${url.protocol} URLs is not supported`);
    }
    if (this.env.ALLOW_PRIVATE !== "1" && literalPrivateHost(url.hostname)) {
      throw new Error(
        `fetch to ${url.host} was refused: functions may only reach public addresses`,
      );
    }
    try {
      return await this.env.INTERNET.fetch(request);
    } catch (err) {
      throw new Error(
        `fetch to ${url.host} failed: the address is not public or could not be reached (${err && err.message})`,
      );
    }
  }
}

/** env.KV of a loaded function: bound to one project through props the function cannot see. */
export class KvBinding extends WorkerEntrypoint {
  async call(op, args, body) {
    const res = await hostFetch(this.env, "/__wb/kv/" + op, {
      method: "POST",
      headers: {
        "x-workerbase-project": this.ctx.props.projectId,
        "x-workerbase-args": JSON.stringify(args),
      },
      body: body ?? null,
    });
    const meta = res.headers.get("x-workerbase-result");
    if (res.status === 400) throw new Error(await res.text());
    if (!res.ok) throw new Error(`KV ${op} failed: ${await res.text()}`);
    return {
      meta: meta ? JSON.parse(meta) : null,
      body: res.status === 204 ? null : await res.arrayBuffer(),
    };
  }
}

/** env.DB of a loaded function: bound to one project through props the function cannot see. */
export class DbBinding extends WorkerEntrypoint {
  async call(op, payload) {
    const res = await hostFetch(this.env, "/__wb/db/" + op, {
      method: "POST",
      headers: {
        "x-workerbase-project": this.ctx.props.projectId,
        "content-type": "application/json",
      },
      body: JSON.stringify(payload),
    });
    const text = await res.text();
    if (res.status === 400) throw new Error(text);
    if (!res.ok) throw new Error(`D1_ERROR: ${text}`);
    return JSON.parse(text);
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
            [code.moduleName]: code.code,
          },
          env: {
            ...code.secrets,
            __WB_KV: ctx.exports.KvBinding({ props: { projectId } }),
            __WB_DB: ctx.exports.DbBinding({ props: { projectId } }),
            __WB_LIMITS: code.limits,
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
    const path = new URL(request.url).pathname;
    if (path === "/__wb/health") return Response.json({ ok: true, loadedIsolates });
    if (path !== "/__wb/invoke") return new Response("not found", { status: 404 });

    const workerId = request.headers.get("x-workerbase-worker");
    const deploymentId = request.headers.get("x-workerbase-deployment");
    const projectId = request.headers.get("x-workerbase-project");
    const method = request.headers.get("x-workerbase-method") || "GET";
    const headers = new Headers();
    for (const [name, value] of request.headers) {
      if (!name.startsWith("x-workerbase-")) headers.append(name, value);
    }
    if (request.headers.has("x-workerbase-probe")) headers.set("x-workerbase-probe", "1");
    const hasBody = method !== "GET" && method !== "HEAD";
    const inner = new Request(request.headers.get("x-workerbase-url"), {
      method,
      headers,
      body: hasBody ? request.body : null,
    });
    const stub = env.LOADER.get(workerId, () => loadCode(env, ctx, deploymentId, projectId));
    try {
      return await stub.getEntrypoint().fetch(inner);
    } catch (err) {
      const message = String((err && err.message) || err);
      const kind = message.startsWith("Failed to start Worker") ? "load" : "internal";
      return failure(kind, message);
    }
  },
};
