import crypto from "node:crypto";
import net from "node:net";

/**
 * The hosts' channel for project-database operations: one persistent TCP connection per pair
 * of hosts, carrying length-prefixed JSON frames, authenticated both ways when it opens.
 * Hand-written because no library does this small thing without HTTP's cost per message,
 * which is most of what forwarding a statement costs (bench/RESULTS.md).
 *
 * Opening: the server sends a random 32-byte nonce; the client answers with its own nonce
 * and HMAC(key, "client" + server nonce); the server checks it (else it closes the
 * connection, having run nothing) and answers HMAC(key, "server" + client nonce), which the
 * client checks. The key is derived from the master key, so only hosts of the cluster pass,
 * and the nonces make a recorded conversation useless. Then each frame is
 * [u32 length][u32 id][JSON], a request and its answer sharing the id.
 */

const nonceBytes = 32;
const macBytes = 32;

function mac(key: Buffer, role: "client" | "server", nonce: Buffer): Buffer {
  return crypto.createHmac("sha256", key).update(role).update(nonce).digest();
}

function frame(id: number, value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value));
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(body.length, 0);
  head.writeUInt32BE(id, 4);
  return Buffer.concat([head, body]);
}

/** Splits a byte stream into frames; calls `onFrame` with each; false past `maxBytes`. */
class Frames {
  private buffered: Buffer = Buffer.alloc(0);

  constructor(
    private maxBytes: number,
    private onFrame: (id: number, body: Buffer) => void,
  ) {}

  push(chunk: Buffer): boolean {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    while (this.buffered.length >= 8) {
      const length = this.buffered.readUInt32BE(0);
      if (length > this.maxBytes) return false;
      if (this.buffered.length < 8 + length) break;
      const id = this.buffered.readUInt32BE(4);
      const body = this.buffered.subarray(8, 8 + length);
      this.buffered = this.buffered.subarray(8 + length);
      this.onFrame(id, body);
    }
    return true;
  }
}

/** Reads exactly `n` bytes first (the opening), then hands the rest on. */
function readExactly(socket: net.Socket, n: number): Promise<[Buffer, Buffer]> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= n) {
        socket.off("data", onData);
        socket.off("close", onClose);
        socket.pause();
        resolve([got.subarray(0, n), got.subarray(n)]);
      }
    };
    const onClose = () => reject(new Error("the connection closed while opening"));
    socket.on("data", onData);
    socket.once("close", onClose);
  });
}

export type Handler = (request: unknown) => Promise<unknown>;

/** Accepts the other hosts' connections and answers their requests with `handle`. */
export async function listenChannel(
  host: string,
  port: number,
  key: Buffer,
  maxBytes: number,
  handle: Handler,
): Promise<{ port: number; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.setNoDelay(true);
    socket.on("error", () => {});
    const nonce = crypto.randomBytes(nonceBytes);
    socket.write(nonce);
    const opening = setTimeout(() => socket.destroy(), 5000);
    readExactly(socket, nonceBytes + macBytes).then(
      ([hello, rest]) => {
        clearTimeout(opening);
        const clientNonce = hello.subarray(0, nonceBytes);
        if (!crypto.timingSafeEqual(hello.subarray(nonceBytes), mac(key, "client", nonce))) {
          socket.destroy();
          return;
        }
        socket.write(mac(key, "server", clientNonce));
        const frames = new Frames(maxBytes, (id, body) => {
          let request: unknown;
          try {
            request = JSON.parse(body.toString("utf8"));
          } catch {
            socket.destroy();
            return;
          }
          void handle(request).then((answer) => {
            if (!socket.destroyed) socket.write(frame(id, answer));
          });
        });
        socket.on("data", (chunk: Buffer) => {
          if (!frames.push(chunk)) socket.destroy();
        });
        if (rest.length && !frames.push(rest)) socket.destroy();
        socket.resume();
      },
      () => clearTimeout(opening),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** One connection to one host, opened when first needed and again after it drops. */
class Connection {
  private socket?: net.Socket;
  private opened?: Promise<net.Socket>;
  private pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(
    private host: string,
    private port: number,
    private key: Buffer,
    private maxBytes: number,
  ) {}

  async request(value: unknown, timeoutMs: number): Promise<unknown> {
    const socket = await this.open();
    const id = this.nextId++ % 0xffffffff || this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error("no answer in time"));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      socket.write(frame(id, value));
    });
  }

  private open(): Promise<net.Socket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    this.opened ??= this.connect().finally(() => (this.opened = undefined));
    return this.opened;
  }

  private async connect(): Promise<net.Socket> {
    const socket = net.connect(this.port, this.host);
    socket.setNoDelay(true);
    const failed = new Promise<never>((_, reject) => {
      socket.once("error", reject);
      socket.once("close", () => reject(new Error("the connection closed while opening")));
    });
    failed.catch(() => {});
    const timer = setTimeout(() => socket.destroy(new Error("no answer while opening")), 5000);
    try {
      const [nonce] = await Promise.race([readExactly(socket, nonceBytes), failed]);
      const mine = crypto.randomBytes(nonceBytes);
      socket.write(Buffer.concat([mine, mac(this.key, "client", nonce)]));
      socket.resume();
      const [proof, rest] = await Promise.race([readExactly(socket, macBytes), failed]);
      if (!crypto.timingSafeEqual(proof, mac(this.key, "server", mine)))
        throw new Error("the other end is not a host of this cluster");
      const frames = new Frames(this.maxBytes, (id, body) => {
        const waiting = this.pending.get(id);
        if (!waiting) return;
        this.pending.delete(id);
        clearTimeout(waiting.timer);
        try {
          waiting.resolve(JSON.parse(body.toString("utf8")));
        } catch (err) {
          waiting.reject(err as Error);
        }
      });
      socket.removeAllListeners("error").removeAllListeners("close");
      socket.on("error", () => {});
      socket.on("close", () => this.dropped(socket));
      socket.on("data", (chunk: Buffer) => {
        if (!frames.push(chunk)) socket.destroy();
      });
      if (rest.length) frames.push(rest);
      socket.resume();
      this.socket = socket;
      return socket;
    } catch (err) {
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private dropped(socket: net.Socket) {
    if (this.socket === socket) this.socket = undefined;
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(new Error("the connection closed"));
      this.pending.delete(id);
    }
  }

  close(): void {
    this.socket?.destroy();
  }
}

/** Connections to the other hosts, by address. */
export class ChannelClient {
  private connections = new Map<string, Connection>();

  constructor(
    private key: Buffer,
    private maxBytes: number,
  ) {}

  request(host: string, port: number, value: unknown, timeoutMs: number): Promise<unknown> {
    const address = `${host}:${port}`;
    let connection = this.connections.get(address);
    if (!connection) {
      connection = new Connection(host, port, this.key, this.maxBytes);
      this.connections.set(address, connection);
    }
    return connection.request(value, timeoutMs);
  }

  close(): void {
    for (const c of this.connections.values()) c.close();
    this.connections.clear();
  }
}
