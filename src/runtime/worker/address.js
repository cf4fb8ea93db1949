/**
 * The one address classifier of Workerbase's egress policy, used on both sides of workerd:
 * by the supervisor (inside workerd, for functions' `fetch`) and by the host
 * (src/http/egress.ts, for webhook deliveries and workflow webhook nodes).
 *
 * Plain ESM with no host imports. Its only dependency is ipaddr.js: Node resolves it from
 * node_modules; inside workerd it is a commonJsModule named "ipaddr.js" (src/runtime/pool.ts).
 *
 * An address is public only when ipaddr.js's `range()` calls it 'unicast'. IPv6 forms that
 * carry an IPv4 address (IPv4-mapped ::ffff:0:0/96, IPv4-translated ::ffff:0:0:0/96,
 * IPv4-compatible ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16 and Teredo 2001::/32) are
 * judged by the IPv4 address they carry, so `[::7f00:1]` is as loopback as 127.0.0.1.
 * The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) is refused outright: where the IPv4
 * address sits in it depends on the prefix length its operator chose, and no public host
 * lives behind a local-use prefix. Text is first canonicalised by the WHATWG URL parser,
 * exactly as `fetch` does, so `0x7f.1`, `2130706433` and `127.1` are 127.0.0.1 here too.
 */
import ipaddr from "ipaddr.js";

/** IPv6 ranges (ipaddr.js names) whose addresses carry an IPv4 address. */
const EMBEDDING = new Set(["ipv4Mapped", "rfc6145", "rfc6052", "6to4", "teredo"]);
const NAT64_WELL_KNOWN = ipaddr.parseCIDR("64:ff9b::/96");

function v4(hi, lo) {
  return new ipaddr.IPv4([hi >> 8, hi & 255, lo >> 8, lo & 255]);
}

/**
 * The IPv4 addresses an IPv6 address carries (Teredo carries two: its server and, inverted,
 * its client), an empty list if it carries none, or null if it carries one we cannot place.
 */
function embeddedIPv4(addr, range) {
  const p = addr.parts;
  switch (range) {
    case "ipv4Mapped": // ::ffff:a.b.c.d
    case "rfc6145": // ::ffff:0:a.b.c.d
      return [v4(p[6], p[7])];
    case "rfc6052": // 64:ff9b::a.b.c.d; 64:ff9b:1::/48 has no fixed place for it
      return addr.match(NAT64_WELL_KNOWN) ? [v4(p[6], p[7])] : null;
    case "6to4": // 2002:aabb:ccdd::/48
      return [v4(p[1], p[2])];
    case "teredo": // 2001:0:server:flags:port:client, the client's bits inverted
      return [v4(p[2], p[3]), v4(p[6] ^ 0xffff, p[7] ^ 0xffff)];
  }
  // IPv4-compatible ::a.b.c.d (deprecated, but some stacks still route it to IPv4); :: and ::1
  // are in it too, but have ranges of their own.
  if (range === "unicast" && p.slice(0, 6).every((x) => x === 0)) return [v4(p[6], p[7])];
  return [];
}

/** Canonical text as a URL would carry it: a name stays a name, an IP literal is parsed. */
function parse(host) {
  if (typeof host !== "string" || host === "" || /[\s/\\?#@]/.test(host)) return null;
  let h = host;
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  try {
    if (h.includes(":")) {
      const canonical = new URL(`http://[${h}]/`).hostname.slice(1, -1);
      return ipaddr.IPv6.parse(canonical);
    }
    const canonical = new URL(`http://${h}/`).hostname;
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(canonical)) return null; // a name, not an address
    return ipaddr.IPv4.parse(canonical);
  } catch {
    return null;
  }
}

/**
 * @typedef {object} AddressClass
 * @property {4 | 6} family
 * @property {string} address canonical text, IPv6 without brackets
 * @property {string} range ipaddr.js's range of the address itself ('unicast', 'loopback',
 *   'private', 'ipv4Mapped', '6to4', ...)
 * @property {{ address: string, range: string }[]} embedded the IPv4 addresses it carries
 * @property {boolean} public whether egress may reach it
 */

/**
 * Classifies a host as a URL carries it (brackets around IPv6 allowed); null when it is not
 * an IP literal (a name, or text no URL would accept as a host).
 * @param {string} host
 * @returns {AddressClass | null}
 */
export function classifyAddress(host) {
  const addr = parse(host);
  if (!addr) return null;
  const range = addr.range();
  const family = addr.kind() === "ipv4" ? 4 : 6;
  if (family === 4)
    return { family, address: addr.toString(), range, embedded: [], public: range === "unicast" };
  const inner = embeddedIPv4(addr, range);
  const embedded = (inner ?? []).map((a) => ({ address: a.toString(), range: a.range() }));
  const publicAddress =
    inner !== null &&
    (range === "unicast" || EMBEDDING.has(range)) &&
    embedded.every((e) => e.range === "unicast");
  return { family, address: addr.toString(), range, embedded, public: publicAddress };
}

/**
 * True when `host` is an IP literal egress may reach: false for names and for anything
 * loopback, private, link-local, unique-local, multicast, reserved or otherwise not public.
 * @param {string} host
 * @returns {boolean}
 */
export function isPublicAddress(host) {
  return classifyAddress(host)?.public === true;
}
