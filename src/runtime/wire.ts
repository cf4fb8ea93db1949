import http from "node:http";
import net from "node:net";

/** A response read off the wire: status, the headers asked for, and the whole body. */
export interface WireResponse {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/** The answer was longer than the caller allows; the connection was cut. */
export class BodyTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the answer is larger than ${limit} bytes`);
  }
}

/** Bounds of one Wire; defaults fit invocations of one workerd process. */
export interface WireLimits {
  /** Connections open at once; requests past it wait for one to come free. */
  maxSockets: number;
  /** An idle kept-alive connection is closed after this long. */
  idleMs: number;
}

const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");
const maxHeadBytes = 64 * 1024;
const statusLine = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/;
const headerLine = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/;
const chunkSizeLine = /^([0-9a-fA-F]{1,12})(?:;[^\r\n]*)?$/;

/**
 * One exchange on one connection: parses the answer as it arrives, strictly (HTTP/1.1 as
 * workerd writes it; anything else is an error, never a guess) and within a body limit.
 */
export class Exchange {
  private buffered: Buffer | null = null;
  private head: { status: number; headers: Map<string, string> } | null = null;
  private length = -1;
  private chunked = false;
  private chunks: Buffer[] = [];
  private received = 0;
  /** Bytes seen so far, head included: a reused connection that saw none may be retried. */
  seen = 0;
  /** For chunked bodies: bytes left in the current chunk; -1 reading a size, -2 its CRLF. */
  private chunkLeft = -1;
  private trailer = false;
  private trailerBytes = 0;
  keepAlive = true;

  constructor(private maxBodyBytes = Infinity) {}

  /** Feeds bytes; returns the response once complete. Throws on a malformed answer. */
  feed(data: Buffer): WireResponse | null {
    this.seen += data.length;
    let buf = this.buffered ? Buffer.concat([this.buffered, data]) : data;
    this.buffered = null;
    if (!this.head) {
      const end = buf.indexOf(HEAD_END);
      if (end < 0) {
        if (buf.length > maxHeadBytes) throw new Error("response head too large");
        this.buffered = buf;
        return null;
      }
      if (end > maxHeadBytes) throw new Error("response head too large");
      this.parseHead(buf.toString("latin1", 0, end));
      buf = buf.subarray(end + 4);
    }
    return this.chunked ? this.feedChunked(buf) : this.feedLength(buf);
  }

  private parseHead(text: string): void {
    const lines = text.split("\r\n");
    const status = statusLine.exec(lines[0]);
    if (!status) throw new Error("not an HTTP/1.x status line");
    const headers = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const m = headerLine.exec(lines[i]);
      if (!m) throw new Error("malformed header line");
      const name = m[1].toLowerCase();
      const prior = headers.get(name);
      if (name === "content-length" && prior !== undefined && prior !== m[2])
        throw new Error("conflicting content-length headers");
      headers.set(
        name,
        prior !== undefined && name !== "content-length" ? `${prior}, ${m[2]}` : m[2],
      );
    }
    const code = Number(status[2]);
    this.head = { status: code, headers };
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    if (te !== undefined) {
      if (te.toLowerCase() !== "chunked") throw new Error("unsupported transfer-encoding");
      if (cl !== undefined) throw new Error("both transfer-encoding and content-length");
      this.chunked = true;
      this.length = 0;
    } else if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(cl)) throw new Error("bad content-length");
      this.length = Number(cl);
      if (this.length > this.maxBodyBytes) throw new BodyTooLarge(this.maxBodyBytes);
    } else if (code === 204 || code === 304) {
      this.length = 0;
    } else {
      throw new Error("response without a length");
    }
    if (headers.get("connection")?.toLowerCase() === "close" || status[1] === "0")
      this.keepAlive = false;
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
        if (this.chunkLeft === 0) this.chunkLeft = -2;
        continue;
      }
      const eol = buf.indexOf(CRLF, at);
      if (eol < 0) {
        if (buf.length - at > 1024) throw new Error("chunk line too long");
        this.buffered = buf.subarray(at);
        return null;
      }
      const line = buf.toString("latin1", at, eol);
      at = eol + 2;
      if (this.chunkLeft === -2) {
        if (line !== "") throw new Error("bytes between a chunk and its CRLF");
        this.chunkLeft = -1;
        continue;
      }
      if (this.trailer) {
        if (line === "") {
          if (at !== buf.length) throw new Error("bytes after the response");
          return this.done();
        }
        this.trailerBytes += line.length + 2;
        if (this.trailerBytes > maxHeadBytes || !headerLine.test(line))
          throw new Error("malformed trailer");
        continue;
      }
      const m = chunkSizeLine.exec(line);
      if (!m) throw new Error("bad chunk size");
      const size = parseInt(m[1], 16);
      if (this.received + size > this.maxBodyBytes) throw new BodyTooLarge(this.maxBodyBytes);
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

/** Serializes a request head; throws (before anything is sent) on a bad name or value. */
function requestHead(
  method: string,
  path: string,
  headers: Record<string, string | string[]>,
  bodyLength: number,
): string {
  let head = `${method} ${path} HTTP/1.1\r\nhost: workerd\r\ncontent-length: ${bodyLength}\r\n`;
  for (const name in headers) {
    const value = headers[name];
    http.validateHeaderName(name);
    for (const v of typeof value === "string" ? [value] : value) {
      http.validateHeaderValue(name, v);
      head += `${name}: ${v}\r\n`;
    }
  }
  return head + "\r\n";
}

type Done = (err: Error | null, res?: WireResponse) => void;

/**
 * Keep-alive HTTP/1.1 connections to one workerd process, for invocations. Lighter than
 * http.request + Agent (no ClientRequest/IncomingMessage/stream machinery per call), which is
 * a measurable share of the host's CPU per invocation. Requests are written with one write
 * (head and body corked); answers must carry a content-length or be chunked, which is all
 * workerd sends. Bounded: connections (`maxSockets`), idle time, and each answer's size.
 */
export class Wire {
  private idle: net.Socket[] = [];
  private open = new Set<net.Socket>();
  private inFlight = new Set<(err: Error) => void>();
  private waiting: (() => void)[] = [];
  private closed = false;
  private limits: WireLimits;

  constructor(
    private connect: () => net.Socket,
    limits: Partial<WireLimits> = {},
  ) {
    this.limits = { maxSockets: 256, idleMs: 30_000, ...limits };
  }

  /** Connections open now (for tests and /metrics). */
  get sockets(): number {
    return this.open.size;
  }

  /**
   * Sends one request; `done` is called exactly once, never synchronously from inside this
   * call's own bookkeeping, with the answer or an error (bad header, connection broken,
   * malformed or oversized answer). Returns a function that aborts the exchange.
   */
  request(
    method: string,
    path: string,
    headers: Record<string, string | string[]>,
    body: Buffer | null,
    callback: Done,
    maxBodyBytes = Infinity,
  ): () => void {
    let called = false;
    const done: Done = (err, res) => {
      if (called) return;
      called = true;
      callback(err, res);
    };
    let head: string;
    try {
      head = requestHead(method, path, headers, body?.length ?? 0);
    } catch (err) {
      done(err as Error);
      return () => undefined;
    }
    let aborted = false;
    let abortCurrent: (() => void) | null = null;
    const start = (retryStale: boolean) => {
      if (aborted) return;
      if (this.closed) return done(new Error("connection closed"));
      if (this.idle.length === 0 && this.open.size >= this.limits.maxSockets) {
        this.waiting.push(() => start(retryStale));
        return;
      }
      const reused = this.idle.length > 0;
      const socket = this.idle.pop() ?? this.dial();
      socket.setTimeout(0);
      abortCurrent = this.exchange(socket, head, body, maxBodyBytes, (err, res, seen) => {
        // A kept-alive connection the other side closed just before we wrote to it: nothing of
        // the answer arrived, so the request was not taken; send it once more on a fresh one.
        if (err && reused && retryStale && seen === 0 && !aborted && !this.closed) {
          return start(false);
        }
        done(err, res);
      });
    };
    start(true);
    return () => {
      if (aborted) return;
      aborted = true;
      if (abortCurrent) abortCurrent();
      else done(new Error("aborted"));
    };
  }

  private exchange(
    socket: net.Socket,
    head: string,
    body: Buffer | null,
    maxBodyBytes: number,
    done: (err: Error | null, res: WireResponse | undefined, seen: number) => void,
  ): () => void {
    const exchange = new Exchange(maxBodyBytes);
    let finished = false;
    const finish = (err: Error | null, res?: WireResponse) => {
      if (finished) return;
      finished = true;
      this.inFlight.delete(finish);
      socket.off("data", onData);
      socket.off("close", onClose);
      if (err || !exchange.keepAlive || this.closed) socket.destroy();
      else this.release(socket);
      done(err, res, exchange.seen);
      this.next();
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

  private release(socket: net.Socket): void {
    this.idle.push(socket);
    socket.setTimeout(this.limits.idleMs);
  }

  private next(): void {
    const run = this.waiting.shift();
    if (run) run();
  }

  private dial(): net.Socket {
    const socket = this.connect();
    socket.setNoDelay(true);
    this.open.add(socket);
    socket.on("error", () => undefined); // surfaces as "close"
    socket.on("timeout", () => {
      // Only idle connections have a timeout set.
      if (this.idle.includes(socket)) socket.destroy();
    });
    socket.on("close", () => {
      this.open.delete(socket);
      const i = this.idle.indexOf(socket);
      if (i >= 0) this.idle.splice(i, 1);
      this.next();
    });
    return socket;
  }

  /** Closes every connection; exchanges in flight end at once (synchronously) with `reason`. */
  destroy(reason: Error): void {
    this.closed = true;
    for (const finish of [...this.inFlight]) finish(reason);
    for (const run of this.waiting.splice(0)) run();
    for (const socket of this.open) socket.destroy();
  }
}
