import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { egressFetch, EgressError, isPublicAddress } from "../../src/http/egress.js";

let upstream: http.Server;
let port: number;

before(async () => {
  upstream = http.createServer((req, res) => {
    if (req.url === "/slow") return void setTimeout(() => res.end("late"), 2000);
    res.end(`hello ${req.method}`);
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  port = (upstream.address() as AddressInfo).port;
});
after(() => {
  upstream.closeAllConnections();
  upstream.close();
});

const call = (url: string, allowPrivateNetwork: boolean, timeoutMs = 2000) =>
  egressFetch(url, { method: "GET", timeoutMs, allowPrivateNetwork });

describe("host-side egress", () => {
  it("tells public addresses from loopback, private, link-local, metadata and mapped ones", () => {
    for (const ip of ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
      assert.equal(isPublicAddress(ip), true, ip);
    for (const ip of [
      "127.0.0.1",
      "10.1.2.3",
      "172.16.0.1",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "::1",
      "::",
      "fe80::1",
      "fd00:ec2::254",
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "64:ff9b::a9fe:a9fe",
      "not-an-ip",
    ])
      assert.equal(isPublicAddress(ip), false, ip);
  });

  it("refuses private literals and names that resolve to them unless private networks are allowed", async () => {
    for (const url of [
      `http://127.0.0.1:${port}/`,
      `http://localhost:${port}/`,
      `http://[::1]:${port}/`,
    ]) {
      await assert.rejects(
        call(url, false),
        (err: unknown) => err instanceof EgressError && err.reason === "refused",
        url,
      );
    }
    const ok = await call(`http://localhost:${port}/`, true);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.toString(), "hello GET");
    await assert.rejects(call("ftp://example.com/", true), /not supported/);
  });

  it("gives up after its time limit", async () => {
    await assert.rejects(
      call(`http://127.0.0.1:${port}/slow`, true, 300),
      (err: unknown) => err instanceof EgressError && err.reason === "timeout",
    );
  });
});
