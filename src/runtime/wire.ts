import http from "node:http";
import net from "node:net";

/** A response read off the wire: status, the headers asked for, and the whole body. */
export interface WireResponse {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");
const maxHeadBytes = 64 * 1024;

/** One exchange on one connection: parses the answer as it arrives. */
class Exchange {
  private buffered: Buffer | null = null;
  private head: { status: number; headers: Map<string, string> } | null = null;
  private length = -1;
  private chunked = false;
  private chunks: Buffer[] = [];
  private received = 0;
  /** For chunked bodies: bytes left in the current chunk, or -1 while reading a size line. */
  private chunkLeft = -1;
  private trailer = false;
  keepAlive = true;

  /** Feeds bytes; returns the response once complete. */
  feed(data: Buffer): WireResponse | null {
    let buf = this.buffered ? Buffer.concat([this.buffered, data]) : data;
    this.buffered = null;
    if (!this.head) {
      const end = buf.indexOf(HEAD_END);
      if (end < 0) {
        if (buf.length > maxHeadBytes) throw new Error("response head too large");
        this.buffered = buf;
        return null;
      }
      this.parseHead(buf.toString("latin1", 0, end));
      buf = buf.subarray(end + 4);
    }
    return this.chunked ? this.feedChunked(buf) : this.feedLength(buf);
  }

  private parseHead(text: string): void {
    const lines = text.split("\r\n");
    const status = Number(lines[0].slice(9, 12));
    if (!lines[0].startsWith("HTTP/1.") || !Number.isInteger(status))
      throw new Error("not an HTTP response");
    const headers = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      if (colon <= 0) continue;
      headers.set(lines[i].slice(0, colon).trim().toLowerCase(), lines[i].slice(colon + 1).trim());
    }
    this.head = { status, headers };
    const te = headers.get("transfer-encoding");
    this.chunked = te !== undefined && te.toLowerCase().includes("chunked");
    const cl = headers.get("content-length");
    this.length = cl !== undefined && !this.chunked ? Number(cl) : 0;
    if (!Number.isSafeInteger(this.length) || this.length < 0)
      throw new Error("bad content-length");
    if (headers.get("connection")?.toLowerCase() === "close" || lines[0].startsWith("HTTP/1.0"))
      this.keepAlive = false;
    if (!this.chunked && cl === undefined && status !== 204 && status !== 304)
      throw new Error("response without a length");
  }

  private feedLength(buf: Buffer): WireResponse | null {
    if (buf.length > 0) {
      this.chunks.push(buf);
      this.received += buf.length;
    }
    if (this.received < this.length) return null;
    if (this.received > this.length) throw new Error("more bytes than the response announced");
    return this.done();
  }

  private feedChunked(buf: Buffer): WireResponse | null {
    let at = 0;
    while (at < buf.length) {
      if (this.chunkLeft > 0) {
        const take = Math.min(this.chunkLeft, buf.length - at);
        this.chunks.push(buf.subarray(at, at + take));
        this.received += take;
        this.chunkLeft -= take;
        at += take;
        if (this.chunkLeft === 0) this.chunkLeft = -2; // the CRLF after the chunk
        continue;
      }
      const eol = buf.indexOf(CRLF, at);
      if (eol < 0) {
        this.buffered = buf.subarray(at);
        return null;
      }
      const line = buf.toString("latin1", at, eol);
      at = eol + 2;
      if (this.chunkLeft === -2) {
        this.chunkLeft = -1;
        continue;
      }
      if (this.trailer) {
        if (line === "") {
          if (at !== buf.length) throw new Error("bytes after the response");
          return this.done();
        }
        continue;
      }
      const size = parseInt(line, 16);
      if (!Number.isSafeInteger(size) || size < 0) throw new Error("bad chunk size");
      if (size === 0) this.trailer = true;
      else this.chunkLeft = size;
    }
    return null;
  }

  private done(): WireResponse {
    const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    return { status: this.head!.status, headers: this.head!.headers, body };
  }
}

/**
 * Keep-alive HTTP/1.1 connections to one workerd process, for invocations. Lighter than
 * http.request + Agent (no ClientRequest/IncomingMessage/stream machinery per call), which is
 * a measurable share of the host's CPU per invocation. Requests are written with one write
 * (head and body corked); answers must carry a content-length or be chunked, which is all
 * workerd sends.
 */
export class Wire {
  private idle: net.Socket[] = [];
  private open = new Set<net.Socket>();
  private inFlight = new Set<(err: Error) => void>();
  private closed = false;

  constructor(private connect: () => net.Socket) {}

  /**
   * Sends one request; `done` is called once with the answer or an error (connection broken,
   * unreadable answer). Returns a function that aborts the exchange (its connection is closed).
   */
  request(
    method: string,
    path: string,
    headers: Record<string, string | string[]>,
    body: Buffer | null,
    done: (err: Error | null, res?: WireResponse) => void,
  ): () => void {
    let head = `${method} ${path} HTTP/1.1\r\nhost: workerd\r\ncontent-length: ${body?.length ?? 0}\r\n`;
    for (const name in headers) {
      const value = headers[name];
      http.validateHeaderName(name);
      if (typeof value === "string") {
        http.validateHeaderValue(name, value);
        head += `${name}: ${value}\r\n`;
      } else {
        for (const v of value) {
          http.validateHeaderValue(name, v);
          head += `${name}: ${v}\r\n`;
        }
      }
    }
    head += "\r\n";

    if (this.closed) {
      done(new Error("connection closed"));
      return () => undefined;
    }
    const socket = this.idle.pop() ?? this.dial();
    const exchange = new Exchange();
    let finished = false;
    const finish = (err: Error | null, res?: WireResponse) => {
      if (finished) return;
      finished = true;
      this.inFlight.delete(finish);
      socket.off("data", onData);
      socket.off("close", onClose);
      if (err || !exchange.keepAlive || this.closed) socket.destroy();
      else this.idle.push(socket);
      done(err, res);
    };
    const onData = (chunk: Buffer) => {
      let res: WireResponse | null;
      try {
        res = exchange.feed(chunk);
      } catch (err) {
        return finish(err as Error);
      }
      if (res) finish(null, res);
    };
    const onClose = () => finish(new Error("connection closed"));
    this.inFlight.add(finish);
    socket.on("data", onData);
    socket.on("close", onClose);
    socket.cork();
    socket.write(head, "latin1");
    if (body && body.length > 0) socket.write(body);
    socket.uncork();
    return () => finish(new Error("aborted"));
  }

  private dial(): net.Socket {
    const socket = this.connect();
    socket.setNoDelay(true);
    this.open.add(socket);
    socket.on("error", () => undefined); // surfaces as "close"
    socket.on("close", () => {
      this.open.delete(socket);
      const i = this.idle.indexOf(socket);
      if (i >= 0) this.idle.splice(i, 1);
    });
    return socket;
  }

  /** Closes every connection; exchanges in flight end at once (synchronously) with `reason`. */
  destroy(reason: Error): void {
    this.closed = true;
    for (const finish of [...this.inFlight]) finish(reason);
    for (const socket of this.open) socket.destroy();
  }
}
