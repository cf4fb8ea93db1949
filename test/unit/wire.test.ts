import assert from "node:assert/strict";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { BodyTooLarge, Exchange, Wire, type WireResponse } from "../../src/runtime/wire.js";

function parse(text: string, maxBodyBytes = Infinity): WireResponse | null {
  return new Exchange(maxBodyBytes).feed(Buffer.from(text, "latin1"));
}

describe("the runtime wire parses answers strictly", () => {
  it("reads a content-length answer and a chunked one", () => {
    assert.equal(parse("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi")!.body.toString(), "hi");
    const chunked = parse(
      "HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n1;ext=1\r\n!\r\n0\r\n\r\n",
    );
    assert.equal(chunked!.status, 201);
    assert.equal(chunked!.body.toString(), "hi!");
  });

  const refused: [string, string][] = [
    [
      "a malformed chunk size",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n",
    ],
    [
      "a negative chunk size",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-2\r\nhi\r\n0\r\n\r\n",
    ],
    [
      "junk before a chunk's CRLF",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhiXX\r\n0\r\n\r\n",
    ],
    [
      "conflicting content-length headers",
      "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nhi",
    ],
    ["a two-digit status", "HTTP/1.1 20 OK\r\ncontent-length: 0\r\n\r\n"],
    ["a non-numeric content-length", "HTTP/1.1 200 OK\r\ncontent-length: 2x\r\n\r\nhi"],
    ["both framings", "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n"],
    ["a header line without a colon", "HTTP/1.1 200 OK\r\nbogus\r\ncontent-length: 0\r\n\r\n"],
    ["no length at all", "HTTP/1.1 200 OK\r\n\r\nhi"],
    ["not HTTP", "SSH-2.0 hello\r\n\r\n"],
  ];
  for (const [what, text] of refused) {
    it(`refuses ${what}`, () => {
      assert.throws(() => parse(text));
    });
  }

  it("stops at the body limit, by the announced length and by the chunks that arrive", () => {
    assert.throws(() => parse("HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n", 10), BodyTooLarge);
    const big =
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n";
    assert.throws(() => parse(big, 10), BodyTooLarge);
  });
});

/** A tiny HTTP server on a raw socket that answers each request with `answer(n)`. */
async function rawServer(answer: (n: number, socket: net.Socket) => void) {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("data", (d) => {
      if (d.includes("\r\n\r\n")) answer(n++, socket);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    wire: (limits = {}) => new Wire(() => net.connect(port, "127.0.0.1"), limits),
    sockets,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

function send(wire: Wire, headers: Record<string, string> = {}): Promise<WireResponse> {
  return new Promise((resolve, reject) =>
    wire.request("GET", "/", headers, null, (err, res) => (err ? reject(err) : resolve(res!))),
  );
}

const ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

describe("the runtime wire's connections", () => {
  it("a header value it cannot carry fails the request through its callback, not a throw", async () => {
    const server = await rawServer((_n, s) => s.write(ok));
    const wire = server.wire();
    await assert.rejects(send(wire, { "x-price": "price €5" }));
    assert.equal(wire.sockets, 0, "nothing was dialed for a refused request");
    assert.equal((await send(wire)).body.toString(), "ok");
    wire.destroy(new Error("done"));
    server.close();
  });

  it("a kept-alive connection closed by the other side is retried once on a fresh one, not reported", async () => {
    // The server answers, then closes every connection right after its first answer.
    const server = await rawServer((_n, s) => {
      if (s.writableEnded) return void s.destroy();
      s.end(ok);
    });
    const wire = server.wire();
    assert.equal((await send(wire)).body.toString(), "ok");
    // Written at once, before the close is noticed: the reused connection is stale.
    assert.equal((await send(wire)).body.toString(), "ok");
    wire.destroy(new Error("done"));
    server.close();
  });

  it("at most maxSockets connections are open; further requests wait their turn", async () => {
    const held: net.Socket[] = [];
    const server = await rawServer((_n, s) => held.push(s));
    const wire = server.wire({ maxSockets: 2 });
    const answers = [send(wire), send(wire), send(wire), send(wire)];
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(server.sockets.size, 2);
    while (held.length > 0) held.shift()!.write(ok);
    await new Promise((r) => setTimeout(r, 100));
    while (held.length > 0) held.shift()!.write(ok);
    assert.deepEqual(
      (await Promise.all(answers)).map((r) => r.status),
      [200, 200, 200, 200],
    );
    wire.destroy(new Error("done"));
    server.close();
  });

  it("closes a connection idle past its limit", async () => {
    const server = await rawServer((_n, s) => s.write(ok));
    const wire = server.wire({ idleMs: 100 });
    await send(wire);
    assert.equal(wire.sockets, 1);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(wire.sockets, 0);
    server.close();
  });
});
