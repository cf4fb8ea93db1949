// Builds the `env` a function sees: its secrets as strings, plus env.KV and env.DB with
// Cloudflare's APIs on top of the supervisor's capability entrypoints. The raw env (what
// `import { env } from "cloudflare:workers"` shows) holds only the secrets and those two
// capability stubs: no limits or settings that tenant code could change.
import { createKv } from "./workerbase-kv.js";
import { createD1 } from "./workerbase-d1.js";
export function buildEnv(env) {
  const out = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("__WB_")) out[name] = value;
  }
  out.KV = createKv(env.__WB_KV);
  out.DB = createD1(env.__WB_DB);
  return Object.freeze(out);
}
