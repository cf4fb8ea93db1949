import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** One request a receiver got. */
export interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
}

/** How the receiver answers a request: a status, or `hang` (never answers). */
export type Answer = number | "hang";

/**
 * A local webhook receiver on 127.0.0.1 for tests: records every request and answers each
 * with what `answer` decides (200 by default).
 */
export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** Requests to one path. */
  at: (path: string) => Received[];
  answer: (fn: (req: Received, seen: number) => Answer) => void;
  /** Resolves once `count` requests reached `path` (or rejects after `timeoutMs`). */
  waitFor: (path: string, count: number, timeoutMs?: number) => Promise<Received[]>;
  close: () => Promise<void>;
}

/** Starts a receiver, on a given port (to bring one back up) or a free one. */
export async function startReceiver(port = 0): Promise<Receiver> {
  const received: Received[] = [];
  const sockets = new Set<Socket>();
  let decide: (req: Received, seen: number) => Answer = () => 200;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const entry: Received = {
        path: req.url ?? "/",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        at: Date.now(),
      };
      received.push(entry);
      const seen = received.filter((r) => r.path === entry.path).length;
      const answer = decide(entry, seen);
      if (answer === "hang") return;
      res.writeHead(answer, { "content-type": "text/plain" });
      res.end(answer < 300 ? "ok" : "receiver failure");
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const actual = (server.address() as AddressInfo).port;
  const at = (path: string) => received.filter((r) => r.path === path);
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    received,
    at,
    answer: (fn) => (decide = fn),
    waitFor: async (path, count, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      while (at(path).length < count) {
        if (Date.now() > deadline)
          throw new Error(`${path} got ${at(path).length} of ${count} requests in time`);
        await new Promise((r) => setTimeout(r, 25));
      }
      return at(path);
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
