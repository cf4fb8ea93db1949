#!/usr/bin/env node
// The `workerbase` command. For `serve` this process is itself the host (no child Node process),
// so signals sent to it reach the host directly.
import { main } from "../dist/cli/main.js";

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === "number") process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  },
);
