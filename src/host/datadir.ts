import fs from "node:fs";
import path from "node:path";

/** Files the host keeps in its data dir that hold secrets or their hashes. */
const storeFiles = [
  "workerbase.db",
  "workerbase.db-wal",
  "workerbase.db-shm",
  "master.key",
  "credentials.json",
  "host-id",
];

/**
 * Makes the data dir private before anything is written to it: files this process (and its
 * children, which inherit the mask) creates from now on are 0600 and folders 0700; the data
 * dir itself becomes 0700, with a warning when it was open to other users; store files left
 * wider by an older version are narrowed to 0600.
 */
export function secureDataDir(dir: string, log: (line: string) => void): void {
  process.umask(0o077);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const mode = fs.statSync(dir).mode & 0o777;
  if (mode & 0o077) {
    try {
      fs.chmodSync(dir, 0o700);
      log(`warning: the data dir ${dir} was ${octal(mode)}, open to other users; it is now 0700`);
    } catch (err) {
      log(
        `warning: the data dir ${dir} is ${octal(mode)}, open to other users, and could not be made 0700: ${(err as Error).message}`,
      );
    }
  }
  for (const name of storeFiles) {
    const file = path.join(dir, name);
    try {
      if (fs.statSync(file).mode & 0o077) fs.chmodSync(file, 0o600);
    } catch {
      // absent (not created yet), or not ours to change: the 0700 dir still guards it
    }
  }
}

function octal(mode: number): string {
  return "0" + mode.toString(8);
}
