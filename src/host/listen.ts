import type http from "node:http";

/**
 * Listens on `host:port`. A port that is taken or not allowed is an Error whose message says
 * so in a sentence, with what to do instead.
 */
export function listen(
  server: http.Server,
  port: number,
  host: string,
  fd?: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => {
      const other = port === 0 ? "" : `, e.g. --port ${port < 65535 ? port + 1 : port - 1}`;
      if (err.code === "EADDRINUSE")
        reject(
          new Error(
            `Port ${port} on ${host} is already in use (EADDRINUSE): stop what is listening there, or pick another port${other}`,
          ),
        );
      else if (err.code === "EACCES")
        reject(
          new Error(
            `Not allowed to listen on port ${port} (EACCES): ports below 1024 need privileges; pick another port${other}`,
          ),
        );
      else if (err.code === "EADDRNOTAVAIL")
        reject(
          new Error(
            `Cannot listen on ${host} (EADDRNOTAVAIL): it is not an address of this machine; pick another with --host`,
          ),
        );
      else reject(err);
    };
    server.once("error", failed);
    const listening = () => {
      server.off("error", failed);
      resolve();
    };
    // An inherited socket (`serve --workers`) is already bound: accept on it.
    if (fd !== undefined) server.listen({ fd }, listening);
    else server.listen(port, host, listening);
  });
}
