// A trivial HTTP server (a fixed answer per request, no parsing beyond finding the end of each
// request) in its own process: what the load generator reaches against it is its own ceiling.
import { fork, type ChildProcess } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";

const answer = Buffer.from(
  "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!",
);

function serve(): void {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let tail = "";
    socket.on("data", (chunk: Buffer) => {
      // Requests carry no body, so each "\r\n\r\n" ends one; keep 3 bytes for a split marker.
      const text = tail + chunk.toString("latin1");
      let count = 0;
      for (let at = text.indexOf("\r\n\r\n"); at >= 0; at = text.indexOf("\r\n\r\n", at + 4))
        count++;
      const lastEnd = text.lastIndexOf("\r\n\r\n");
      tail = text.slice(lastEnd >= 0 ? lastEnd + 4 : Math.max(0, text.length - 3));
      if (count === 1) socket.write(answer);
      else if (count > 1) socket.write(Buffer.concat(Array(count).fill(answer)));
    });
    socket.on("error", () => undefined);
  });
  server.listen(0, "127.0.0.1", () => process.send!((server.address() as net.AddressInfo).port));
}

export interface TrivialServer {
  port: number;
  pid: number;
  stop: () => Promise<void>;
}

/** Starts the trivial server in a child process. */
export function startTrivialServer(): Promise<TrivialServer> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ["--trivial-child"], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", () => reject(new Error("the trivial server exited")));
    child.once("message", (port) =>
      resolve({
        port: port as number,
        pid: child.pid!,
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill();
          await exited;
        },
      }),
    );
  });
}

if (process.argv.includes("--trivial-child")) {
  serve();
  process.on("disconnect", () => process.exit(0));
}
