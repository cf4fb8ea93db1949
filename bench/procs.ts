// Reading processes from /proc: resident memory and CPU time of the processes under test.
import fs from "node:fs";

function read(file: string): string | null {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return null;
  }
}

/** Resident memory (VmRSS) in bytes; 0 for a process that is gone. */
export function rssBytes(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(read(`/proc/${pid}/status`) ?? "");
  return kb ? Number(kb[1]) * 1024 : 0;
}

/** Proportional set size in bytes (shared pages split between their users); 0 if unknown. */
export function pssBytes(pid: number): number {
  const kb = /^Pss:\s+(\d+)/m.exec(read(`/proc/${pid}/smaps_rollup`) ?? "");
  return kb ? Number(kb[1]) * 1024 : 0;
}

// Linux reports utime/stime in clock ticks; USER_HZ is 100 on every mainstream architecture.
const ticksPerSecond = 100;

/** User + system CPU seconds a process has used so far (0 if gone). */
export function cpuSeconds(pid: number): number {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return 0;
  // Fields after the command name (which may contain spaces) start at field 3.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

function parentOf(pid: number): number {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return -1;
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** Live `workerd` processes whose parent is `parent`. */
export function workerdChildren(parent: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    if (read(`/proc/${entry}/comm`)?.trim() !== "workerd") continue;
    if (parentOf(Number(entry)) === parent) out.push(Number(entry));
  }
  return out;
}

/** Every descendant of `root` whose command is `workerd` (any depth). */
export function workerdDescendants(root: number): number[] {
  return allWorkerd().filter((pid) => {
    for (let p = parentOf(pid), hops = 0; p > 1 && hops < 10; p = parentOf(p), hops++)
      if (p === root) return true;
    return false;
  });
}

/** Every live `workerd` process on the machine. */
export function allWorkerd(): number[] {
  return fs
    .readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e) && read(`/proc/${e}/comm`)?.trim() === "workerd")
    .map(Number);
}

/** CPU seconds used by a set of processes between two readings, per process group label. */
export class CpuMeter {
  private start = new Map<number, number>();
  constructor(private groups: Record<string, () => number[]>) {}

  begin(): void {
    this.start.clear();
    for (const pids of Object.values(this.groups))
      for (const pid of pids()) this.start.set(pid, cpuSeconds(pid));
  }

  /** Seconds of CPU per group since begin(). */
  end(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [label, pids] of Object.entries(this.groups)) {
      out[label] = pids().reduce((n, pid) => n + cpuSeconds(pid) - (this.start.get(pid) ?? 0), 0);
    }
    return out;
  }
}
