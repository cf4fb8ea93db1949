import { loadConfig } from "../host/config.js";
import { startHost } from "../host/boot.js";

/** `workerbase serve`: this process becomes the host until SIGTERM or SIGINT. */
export async function serve(args: string[]): Promise<number> {
  const config = loadConfig(args);
  const host = await startHost(config);
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
