import { serve } from "./serve.js";

const usage = `workerbase: self-hosted serverless functions on Cloudflare's workerd

Usage: workerbase <command> [options]

Commands:
  serve [--port N] [--host H] [--data DIR] [--public-url URL] [--allow-private-network]
        runs the platform
`;

/** Entry point of the `workerbase` command; resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(usage);
    return 0;
  }
  if (command === "serve") return serve(rest);
  process.stderr.write(`unknown command "${command}"; see "workerbase --help"\n`);
  return 2;
}
