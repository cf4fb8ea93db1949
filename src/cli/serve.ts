import { loadConfig } from "../host/config.js";
import { startHost, type RunningHost } from "../host/boot.js";
import { CliError } from "./args.js";

/** `workerbase serve`: this process becomes the host until SIGTERM or SIGINT. */
export async function serve(args: string[]): Promise<number> {
  let host: RunningHost;
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(args);
    host = await startHost(config);
  } catch (err) {
    // A failed start must not leave the process up: whatever had begun (a child, a timer)
    // would keep it alive without serving. The port is taken first, so a busy port has
    // started and created nothing.
    setTimeout(() => process.exit(1), 200).unref();
    throw new CliError((err as Error).message);
  }
  console.log(`Workerbase is listening on ${host.url} (data in ${config.dataDir})`);
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      console.log(`${signal} received; finishing in-flight invocations and stopping`);
      host.shutdown().then(
        () => resolve(0),
        (err) => {
          console.error(`shutdown failed: ${(err as Error).message}`);
          resolve(1);
        },
      );
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
