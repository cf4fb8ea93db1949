// Builds the `env` a function sees: its secrets as strings, plus env.KV and env.DB with
// Cloudflare's APIs on top of the supervisor's capability entrypoints.
export function buildEnv(env) {
  const out = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("__WB_")) out[name] = value;
  }
  return Object.freeze(out);
}
