import fs from "node:fs";
import path from "node:path";

/** How a workerd process's whole memory (heap, typed arrays, native) is bounded. */
export type MemoryEnforcement = "cgroup" | "rss-sampling";

/**
 * Bounds the memory of workerd processes. With cgroup v2 and a memory controller the host may
 * delegate to (as root, or in a delegated subtree), each process goes into a cgroup of its
 * tier with `memory.max`, and the kernel stops it at the bound. Otherwise the host samples
 * every process's resident memory (every 100 ms) and kills one past its bound: coarser, as an
 * allocation burst can overshoot by what it touches in one interval, but it needs nothing
 * from the system.
 */
export class MemoryGuard {
  readonly enforcement: MemoryEnforcement;
  private root: string | null;

  constructor(hostPid = process.pid) {
    this.root = MemoryGuard.delegatedRoot(hostPid);
    this.enforcement = this.root ? "cgroup" : "rss-sampling";
  }

  /** A cgroup v2 folder of our own with the memory controller on for its children, or null. */
  private static delegatedRoot(hostPid: number): string | null {
    try {
      const own = fs
        .readFileSync("/proc/self/cgroup", "utf8")
        .split("\n")
        .find((l) => l.startsWith("0::"));
      if (!own) return null;
      const base = path.join("/sys/fs/cgroup", own.slice(3));
      if (!fs.readFileSync(path.join(base, "cgroup.controllers"), "utf8").includes("memory"))
        return null;
      const root = path.join(base, `workerbase-${hostPid}`);
      fs.mkdirSync(root, { recursive: true });
      fs.writeFileSync(path.join(root, "cgroup.subtree_control"), "+memory");
      return root;
    } catch {
      return null;
    }
  }

  /**
   * Puts a process under `maxBytes`. Returns false when only sampling can bound it (then the
   * caller kills it past the bound itself).
   */
  place(pid: number | undefined, label: string, maxBytes: number): boolean {
    if (!this.root || pid === undefined) return false;
    try {
      const dir = path.join(this.root, label.replace(/[^a-z0-9-]/gi, "-"));
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, "memory.max"), String(maxBytes));
      fs.writeFileSync(path.join(dir, "cgroup.procs"), String(pid));
      return true;
    } catch {
      return false;
    }
  }

  /** Removes the host's cgroups (their processes have exited). */
  close(): void {
    if (!this.root) return;
    try {
      for (const child of fs.readdirSync(this.root, { withFileTypes: true })) {
        if (child.isDirectory()) fs.rmdirSync(path.join(this.root, child.name));
      }
      fs.rmdirSync(this.root);
    } catch {
      // A process still exiting keeps its group; the kernel frees it once empty.
    }
  }
}
