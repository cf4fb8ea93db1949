import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Runtime socket folders are `wb-rt-*` in the system temp dir (see process.ts). */
export const socketDirPrefix = "wb-rt-";
const pidFile = "host.pid";

/** Marks a runtime socket folder as this host's, so a later start can tell it was left behind. */
export function markSocketDir(dir: string): void {
  fs.writeFileSync(path.join(dir, pidFile), `${process.pid}\n`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists, it is only another user's.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the runtime socket folders whose host process is gone: a host killed with SIGKILL
 * cannot remove its own. Folders without a pid file (or of a live host) are left alone.
 * Returns how many were removed.
 */
export function removeStaleSocketDirs(tmp = os.tmpdir()): number {
  let removed = 0;
  let names: string[];
  try {
    names = fs.readdirSync(tmp).filter((n) => n.startsWith(socketDirPrefix));
  } catch {
    return 0;
  }
  for (const name of names) {
    const dir = path.join(tmp, name);
    let pid: number;
    try {
      pid = Number(fs.readFileSync(path.join(dir, pidFile), "utf8").trim());
    } catch {
      continue;
    }
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue;
    try {
      fs.rmSync(dir, { recursive: true, force: true });
      removed++;
    } catch {
      // another user's folder, or removed meanwhile
    }
  }
  return removed;
}
