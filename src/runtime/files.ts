import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The package's root folder, found from this file whether it runs from src/ or dist/. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("cannot find the workerbase package root");
    dir = parent;
  }
  return dir;
}

/** The folder with the JavaScript that runs inside workerd. */
export function workerSourceDir(): string {
  return path.join(packageRoot(), "src", "runtime", "worker");
}

/**
 * ipaddr.js's CommonJS build, as Node resolves it for the shared address classifier
 * (worker/address.js), so workerd gets the very file the host uses.
 */
export function ipaddrSource(): string {
  return createRequire(path.join(workerSourceDir(), "address.js")).resolve("ipaddr.js");
}
