/** Variables of the host's environment a child process (workerd, a database process) may see. */
const passed = ["PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL", "LD_LIBRARY_PATH"];

/**
 * The environment for a child process: only what a program needs to run, never the host's
 * keys (WORKERBASE_API_KEY, WORKERBASE_ADMIN_KEY, WORKERBASE_MASTER_KEY) or anything else.
 */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const name of passed) if (process.env[name] !== undefined) out[name] = process.env[name];
  return { ...out, ...extra };
}
