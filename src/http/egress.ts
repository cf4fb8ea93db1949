import dns from "node:dns";
import http from "node:http";
import https from "node:https";
import type net from "node:net";
// The address classifier functions' fetch uses inside workerd too. It lives with the worker
// sources, which stay in src/ (workerd loads them from there): this path names the same file
// whether the host runs from src/ or from dist/.
import { classifyAddress, isPublicAddress } from "../../src/runtime/worker/address.js";

/**
 * Host-side egress: the same policy as functions' `fetch` (public addresses only unless the
 * operator allows private ones), for HTTP calls the host makes on a user's behalf (workflow
 * webhook nodes, webhook deliveries). Names are checked after resolution, at connect time,
 * so a name that resolves to a private address (or rebinds to one) is refused too.
 */

/** Whether an IP literal is public (IPv6 forms carrying an IPv4 address are judged by it). */
export { classifyAddress, isPublicAddress };

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
  const address = classifyAddress(url.hostname);
  if (address && !address.public && !request.allowPrivateNetwork) {
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
