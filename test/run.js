// Runs every test file under test/ with Node's test runner (TypeScript through tsx).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const only = process.argv.slice(2);
function find(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return find(full);
    return e.name.endsWith(".test.ts") ? [full] : [];
  });
}
const files = find("test")
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=300000", ...files],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);
