import dns from "node:dns";
import http from "node:http";
import https from "node:https";
import net from "node:net";

/**
 * Host-side egress: the same policy as functions' `fetch` (public addresses only unless the
 * operator allows private ones), for HTTP calls the host makes on a user's behalf (workflow
 * webhook nodes, webhook deliveries). Names are checked after resolution, at connect time,
 * so a name that resolves to a private address (or rebinds to one) is refused too.
 */

const blocked = new net.BlockList();
for (const [prefix, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, including the cloud metadata address 169.254.169.254
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 3], // multicast, reserved and broadcast
] as const)
  blocked.addSubnet(prefix, bits, "ipv4");
for (const [prefix, bits] of [
  ["::", 96], // unspecified, loopback and the old IPv4-compatible range
  ["100::", 64],
  ["2001:db8::", 32],
  ["fc00::", 7], // unique local, including fd00:ec2::254 (metadata)
  ["fe80::", 10],
  ["ff00::", 8],
] as const)
  blocked.addSubnet(prefix, bits, "ipv6");

/** The 8 groups of an IPv6 address (accepts an embedded dotted IPv4 tail). */
function groups(ip: string): number[] {
  let text = ip.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number);
    text =
      text.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const fill = tail === undefined ? [] : Array(8 - h.length - t.length).fill("0");
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

/** True when `ip` (a literal address) is public: neither loopback, private, link-local nor reserved. */
export function isPublicAddress(ip: string): boolean {
  const family = net.isIP(ip);
  if (family === 4) return !blocked.check(ip, "ipv4");
  if (family !== 6) return false;
  const g = groups(ip);
  const embedded = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) carry an IPv4 address.
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff)
    return isPublicAddress(embedded(g[6], g[7]));
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0))
    return isPublicAddress(embedded(g[6], g[7]));
  return !blocked.check(ip, "ipv6");
}

/** Why a call was not made or did not finish. */
export class EgressError extends Error {
  constructor(
    readonly reason: "refused" | "timeout" | "network" | "too_large",
    message: string,
  ) {
    super(message);
  }
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/** A `lookup` for sockets that refuses names resolving to non-public addresses. */
export function guardedLookup(allowPrivateNetwork: boolean) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as dns.LookupAddress[];
      const bad = list.find((a) => !isPublicAddress(a.address));
      if (bad && !allowPrivateNetwork) {
        const refusal = new EgressError(
          "refused",
          `${hostname} resolves to ${bad.address}, which is not a public address`,
        ) as unknown as NodeJS.ErrnoException;
        return callback(refusal, []);
      }
      if (options.all) return callback(null, list);
      callback(null, list[0].address, list[0].family);
    });
  };
}

export interface EgressRequest {
  method: string;
  headers?: Record<string, string>;
  body?: Buffer | string | null;
  timeoutMs: number;
  allowPrivateNetwork: boolean;
  /** Larger answers fail the call (default 10 MiB). */
  maxResponseBytes?: number;
}

export interface EgressResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const agents = {
  "http:": new http.Agent({ keepAlive: true }),
  "https:": new https.Agent({ keepAlive: true }),
};

/**
 * One outbound HTTP call under the egress policy, within `timeoutMs` for the whole exchange.
 * Redirects are not followed (a 3xx is the answer). Rejects with an EgressError.
 */
export function egressFetch(target: string, request: EgressRequest): Promise<EgressResponse> {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return Promise.reject(new EgressError("refused", `"${target}" is not a valid URL`));
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return Promise.reject(new EgressError("refused", `${url.protocol} URLs are not supported`));
  const literal = url.hostname.replace(/^\[|\]$/g, "");
  if (net.isIP(literal) && !isPublicAddress(literal) && !request.allowPrivateNetwork) {
    return Promise.reject(
      new EgressError(
        "refused",
        `${url.host} is not a public address; calls may only reach public addresses`,
      ),
    );
  }
  const max = request.maxResponseBytes ?? 10 * 1024 * 1024;
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(url, {
      method: request.method,
      headers: request.headers,
      agent: agents[url.protocol as "http:" | "https:"],
      lookup: guardedLookup(request.allowPrivateNetwork) as unknown as net.LookupFunction,
    });
    const timer = setTimeout(
      () =>
        req.destroy(
          new EgressError(
            "timeout",
            `${url.host} did not answer within ${request.timeoutMs / 1000} s`,
          ),
        ),
      request.timeoutMs,
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(
        err instanceof EgressError
          ? err
          : new EgressError("network", `the call to ${url.host} failed: ${err.message}`),
      );
    };
    req.on("error", fail);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > max) {
          req.destroy(
            new EgressError("too_large", `the answer of ${url.host} is larger than ${max} bytes`),
          );
          return;
        }
        chunks.push(chunk);
      });
      res.on("error", fail);
      res.on("end", () => {
        clearTimeout(timer);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers))
          if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
        resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks) });
      });
    });
    req.end(request.body ?? undefined);
  });
}
