import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { classifyAddress, isPublicAddress } from "../../src/runtime/worker/address.js";
import { egressFetch, EgressError } from "../../src/http/egress.js";

// Every form here is refused: [host as a URL carries it, what it is].
const refused: [string, string][] = [
  // IPv4, including the forms the URL parser turns into dotted quads
  ["127.0.0.1", "loopback"],
  ["0x7f.1", "loopback in hex, two parts"],
  ["2130706433", "loopback as one number"],
  ["127.1", "loopback, two parts"],
  ["0177.0.0.1", "loopback in octal"],
  ["0x7f000001", "loopback as one hex number"],
  ["127.0.0.1.", "loopback with a trailing dot"],
  ["0.0.0.0", "unspecified"],
  ["10.1.2.3", "private"],
  ["172.16.0.1", "private"],
  ["192.168.1.1", "private"],
  ["169.254.169.254", "link-local (cloud metadata)"],
  ["100.64.0.1", "carrier-grade NAT"],
  ["192.0.0.1", "reserved"],
  ["192.0.2.1", "documentation"],
  ["198.18.0.1", "benchmarking"],
  ["240.0.0.1", "reserved"],
  ["224.0.0.1", "multicast"],
  ["255.255.255.255", "broadcast"],
  // IPv6
  ["::", "unspecified"],
  ["::1", "loopback"],
  ["[::1]", "loopback in brackets"],
  ["fe80::1", "link-local"],
  ["fec0::1", "deprecated site-local"],
  ["fd00:ec2::254", "unique local (metadata)"],
  ["fc00::1", "unique local"],
  ["ff02::1", "multicast"],
  ["100::1", "discard"],
  ["2001:db8::1", "documentation"],
  ["3fff::1", "documentation"],
  // IPv4-mapped ::ffff:0:0/96, dotted and hex
  ["::ffff:127.0.0.1", "mapped loopback"],
  ["::ffff:7f00:1", "mapped loopback, hex"],
  ["[::ffff:7f00:1]", "mapped loopback, hex, in brackets"],
  ["0:0:0:0:0:ffff:7f00:1", "mapped loopback, long form"],
  ["::ffff:a9fe:a9fe", "mapped metadata"],
  ["::ffff:10.0.0.1", "mapped private"],
  ["::ffff:0.0.0.0", "mapped unspecified"],
  // IPv4-translated ::ffff:0:0:0/96
  ["::ffff:0:7f00:1", "translated loopback"],
  // IPv4-compatible ::/96
  ["::7f00:1", "compatible loopback"],
  ["[::7f00:1]", "compatible loopback in brackets"],
  ["::127.0.0.1", "compatible loopback, dotted"],
  ["::a9fe:a9fe", "compatible metadata"],
  ["::c0a8:101", "compatible private"],
  // NAT64
  ["64:ff9b::7f00:1", "NAT64 loopback"],
  ["64:ff9b::169.254.169.254", "NAT64 metadata"],
  ["64:ff9b::a00:1", "NAT64 private"],
  ["64:ff9b:1::101:101", "local-use NAT64 (refused whatever it carries)"],
  ["64:ff9b:1:7f00:1::", "local-use NAT64"],
  // 6to4 2002::/16 carries IPv4 in bits 16-48
  ["2002:7f00:1::", "6to4 loopback"],
  ["2002:a9fe:a9fe::1", "6to4 metadata"],
  ["2002:c0a8:101::1", "6to4 private"],
  // Teredo 2001::/32 carries the client's IPv4 inverted in the last 32 bits
  ["2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo with a loopback client"],
  ["2001:0:4136:e378:8000:63bf:3f57:fefe", "Teredo with a private client (192.168.1.1)"],
  ["2001:0:a00:1:8000:63bf:fefe:fefe", "Teredo with a private server"],
];

const allowed: [string, string][] = [
  ["1.1.1.1", "public IPv4"],
  ["8.8.8.8", "public IPv4"],
  ["2606:4700::1111", "public IPv6"],
  ["[2606:4700:4700::1111]", "public IPv6 in brackets"],
  ["::ffff:1.1.1.1", "mapped public IPv4 (it reaches 1.1.1.1)"],
  ["::ffff:808:808", "mapped public IPv4, hex"],
  ["64:ff9b::101:101", "NAT64 of a public IPv4"],
  ["2002:101:101::1", "6to4 of a public IPv4"],
  ["2001:0:4136:e378:8000:63bf:fefe:fefe", "Teredo with a public client (1.1.1.1)"],
];

describe("address classifier", () => {
  for (const [host, what] of refused)
    it(`refuses ${host} (${what})`, () => {
      const c = classifyAddress(host);
      assert.ok(c, `${host} is an IP literal`);
      assert.equal(c.public, false, JSON.stringify(c));
      assert.equal(isPublicAddress(host), false);
    });

  for (const [host, what] of allowed)
    it(`allows ${host} (${what})`, () => {
      assert.equal(classifyAddress(host)?.public, true, JSON.stringify(classifyAddress(host)));
      assert.equal(isPublicAddress(host), true);
    });

  it("names the IPv4 address an IPv6 form carries", () => {
    assert.deepEqual(classifyAddress("[::7f00:1]"), {
      family: 6,
      address: "::7f00:1",
      range: "unicast",
      embedded: [{ address: "127.0.0.1", range: "loopback" }],
      public: false,
    });
    assert.deepEqual(classifyAddress("2130706433"), {
      family: 4,
      address: "127.0.0.1",
      range: "loopback",
      embedded: [],
      public: false,
    });
    assert.deepEqual(classifyAddress("2002:7f00:1::")?.embedded, [
      { address: "127.0.0.1", range: "loopback" },
    ]);
  });

  it("is not an address for names and text no URL takes as a host", () => {
    for (const host of ["example.com", "localhost", "", "1.1.1.1/x", "a@127.0.0.1", "999.1.1.1"]) {
      assert.equal(classifyAddress(host), null, host);
      assert.equal(isPublicAddress(host), false, host);
    }
  });
});

describe("host-side egress refuses every non-public form before connecting", () => {
  it("refuses them all as literals in URLs", async () => {
    for (const [host] of refused) {
      const literal = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
      const url = `http://${literal}:9/`;
      await assert.rejects(
        egressFetch(url, { method: "GET", timeoutMs: 1000, allowPrivateNetwork: false }),
        (err: unknown) =>
          err instanceof EgressError &&
          err.reason === "refused" &&
          /is not a public address/.test(err.message),
        url,
      );
    }
  });
});
