import { loadConfig, type Config } from "../host/config.js";
import { startHost, type RunningHost } from "../host/boot.js";
import { startWorkers, worker } from "../host/workers.js";
import { CliError } from "./args.js";

/**
 * `workerbase serve`: this process becomes the host until SIGTERM or SIGINT; with
 * `--workers N`, the parent of N hosts sharing its port (src/host/workers.ts).
 */
export async function serve(args: string[]): Promise<number> {
  let host: RunningHost;
  let config: Config;
  let child = false;
  try {
    config = loadConfig(args);
    child = worker.active(config);
    host =
      config.workers > 1 && !child ? await startWorkers(config, args) : await startHost(config);
  } catch (err) {
    // A failed start must not leave the process up: whatever had begun (a child, a timer)
    // would keep it alive without serving. The port is taken first, so a busy port has
    // started and created nothing.
    setTimeout(() => process.exit(1), 200).unref();
    if (child) {
      // The parent says it, once for all its children.
      worker.failed(err as Error);
      return 1;
    }
    throw new CliError((err as Error).message);
  }
  if (child) worker.ready();
  else
    console.log(
      `Workerbase is listening on ${host.url} (${config.workers > 1 ? `${config.workers} hosts, ` : ""}data in ${config.dataDir})`,
    );
  const code = await new Promise<number>((resolve) => {
    const stop = (why?: string) => {
      if (why) console.log(`${why}; finishing in-flight invocations and stopping`);
      host.shutdown().then(
        () => resolve(0),
        (err) => {
          console.error(`shutdown failed: ${(err as Error).message}`);
          resolve(1);
        },
      );
    };
    if (child) {
      // The parent passes a stop on as SIGTERM, and a Ctrl-C reaches the whole group: either
      // way the parent speaks, and a second signal must not cut the drain short here.
      const quiet = () => stop();
      process.on("SIGTERM", quiet);
      process.on("SIGINT", quiet);
      worker.onParentGone(quiet);
      return;
    }
    process.once("SIGTERM", () => stop("SIGTERM received"));
    process.once("SIGINT", () => stop("SIGINT received"));
  });
  if (child) worker.release();
  return code;
}
