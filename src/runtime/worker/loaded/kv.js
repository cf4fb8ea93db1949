// env.KV: Cloudflare Workers KV's binding API on top of the supervisor's KvBinding entrypoint,
// which forwards each operation to the host (src/kv/binding.ts) for the function's project.
// This module does what workerd's own KV binding does before it talks to the KV service:
// argument conversion (with the same TypeErrors), key name checks and shaping results. The
// limits themselves (sizes, expirations, list limits) are the host's, which words its errors
// as Cloudflare's service does.

const MAX_KEY_BYTES = 512;
// The host refuses metadata over 1024 bytes, after its expiration checks (Cloudflare's order).
// Metadata far past that is refused here, with the host's message, because a put's arguments
// travel in an HTTP header (at most 16 KiB in all).
const MAX_METADATA_BYTES = 1024;
const MAX_METADATA_SENT = 4096;
const text = new TextDecoder("utf-8", { ignoreBOM: true });
const NOT_A_VALUE =
  "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.";

function argumentError(method, index, type) {
  return new TypeError(
    `Failed to execute '${method}' on 'KvNamespace': parameter ${index} is not of type '${type}'.`,
  );
}

function isObject(value) {
  return (typeof value === "object" && value !== null) || typeof value === "function";
}

// The UTF-8 length of a string, lone surrogates counted as 3 bytes, without encoding it.
function utf8Length(s) {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a surrogate pair: 2 units, 4 bytes
      i++;
    } else n += 2;
  }
  return n;
}

// A number argument as workerd converts it to a C++ int.
function toInt(value) {
  const n = +value;
  if (!Number.isFinite(n)) return 0;
  const t = Math.trunc(n);
  if (t < -2147483648 || t > 2147483647) {
    throw new TypeError(
      "Value out of range. Must be between -2147483648 and 2147483647 (inclusive).",
    );
  }
  return t;
}

function checkKey(op, name) {
  if (name === "") throw new TypeError("Key name cannot be empty.");
  if (name === "." || name === "..") throw new TypeError(`"${name}" is not allowed as a key name.`);
  const length = utf8Length(name);
  if (length > MAX_KEY_BYTES) {
    throw new Error(
      `KV ${op} failed: 414 UTF-8 encoded length of ${length} exceeds key length limit of ${MAX_KEY_BYTES}.`,
    );
  }
}

// JSON with non-ASCII characters escaped: arguments travel in an HTTP header.
function headerJson(value) {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

function getOptions(options) {
  if (options === undefined || options === null) return {};
  if (!isObject(options)) return { type: `${options}` };
  return {
    type: options.type === undefined ? undefined : `${options.type}`,
    cacheTtl: options.cacheTtl === undefined ? undefined : toInt(options.cacheTtl),
  };
}

// A found value in the type asked for. Text keeps a leading BOM, as workerd's binding does
// (Response.text() would drop it).
async function shape(res, type) {
  switch (type ?? "text") {
    case "text":
      return text.decode(await res.arrayBuffer());
    case "json":
      return JSON.parse(text.decode(await res.arrayBuffer()));
    case "arrayBuffer":
      return res.arrayBuffer();
    case "stream":
      return res.body ?? new Response(new Uint8Array(0)).body;
    default:
      await res.body?.cancel();
      throw new TypeError(
        'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".',
      );
  }
}

// workerd builds a bulk result from the parsed object's own string keys, skipping array
// indices ("0", "42"): such keys never appear in the map.
function isArrayIndex(key) {
  return /^(0|[1-9][0-9]*)$/.test(key) && Number(key) < 4294967295;
}

/** The env.KV object of a function, bound to its project by the supervisor. */
export function createKv(binding) {
  // One operation through the supervisor's KvBinding to the host (src/kv/binding.ts).
  // Arguments of bounded size (a checked key, checked metadata) travel in a header, those of
  // list and bulk reads (any cursor, up to 100 keys) as the body. Resolves to the host's
  // Response, or to null for an absent key; a broken rule rejects with the host's sentence.
  async function send(op, init) {
    const res = await binding.fetch("http://kv/" + op, { method: "POST", ...init });
    if (res.status === 404) return null;
    if (res.status === 400) throw new Error(await res.text());
    if (!res.ok) throw new Error(`KV ${op} failed: ${await res.text()}`);
    return res;
  }
  const call = (op, args, body = null) =>
    send(op, { headers: { "x-workerbase-args": headerJson(args) }, body });
  const callWithBody = (op, args) => send(op, { body: JSON.stringify(args) });

  async function single(name, options) {
    const args = { key: name };
    if (options.cacheTtl !== undefined) args.cacheTtl = options.cacheTtl;
    const res = await call("get", args);
    if (res === null) return { value: null, metadata: null, cacheStatus: null };
    const value = await shape(res, options.type);
    const metadata = res.headers.get("x-workerbase-metadata");
    return { value, metadata: metadata === null ? null : JSON.parse(metadata), cacheStatus: null };
  }

  async function bulk(names, options, withMetadata) {
    const args = { keys: names };
    if (options.type !== undefined && options.type !== "") args.type = options.type;
    if (withMetadata) args.withMetadata = true;
    if (options.cacheTtl !== undefined) args.cacheTtl = options.cacheTtl;
    const object = await (await callWithBody("getBulk", args)).json();
    const map = new Map();
    for (const key of Object.keys(object)) if (!isArrayIndex(key)) map.set(key, object[key]);
    return map;
  }

  // As in workerd, conversion errors of get() and getWithMetadata() throw at once; a bad key
  // name rejects get()'s promise but throws from getWithMetadata().
  function read(args, withMetadata) {
    if (args.length === 0) {
      throw withMetadata
        ? argumentError("getWithMetadata", 1, "Array or string")
        : argumentError("get", 1, "string or Array");
    }
    const [name, rawOptions] = args;
    if (Array.isArray(name)) {
      const names = name.map((n) => `${n}`);
      return bulk(names, getOptions(rawOptions), withMetadata);
    }
    const key = `${name}`;
    const options = getOptions(rawOptions);
    if (withMetadata) {
      checkKey("GET", key);
      return single(key, options);
    }
    return (async () => {
      checkKey("GET", key);
      return (await single(key, options)).value;
    })();
  }

  async function put(name, value, options) {
    checkKey("PUT", name);
    const args = { key: name };
    if (options.expiration !== undefined) args.expiration = options.expiration;
    if (options.expirationTtl !== undefined) args.expirationTtl = options.expirationTtl;
    if (options.metadata !== undefined && options.metadata !== null) {
      const json = JSON.stringify(options.metadata);
      // workerd sends whatever it serialized; Miniflare's service then fails on `undefined`.
      if (json === undefined) throw new Error("KV PUT failed: 500 Internal Server Error");
      const length = utf8Length(json);
      if (length > MAX_METADATA_SENT) {
        throw new Error(
          `KV PUT failed: 413 Metadata length of ${length} exceeds limit of ${MAX_METADATA_BYTES}.`,
        );
      }
      args.metadata = json;
    }
    // fetch() copies a buffer's bytes (a view's only) when it is called, as put() must.
    const ok =
      typeof value === "string" ||
      value instanceof ArrayBuffer ||
      ArrayBuffer.isView(value) ||
      value instanceof ReadableStream;
    if (!ok) throw new TypeError(NOT_A_VALUE);
    await call("put", args, value);
  }

  return {
    get(...args) {
      return read(args, false);
    },

    getWithMetadata(...args) {
      return read(args, true);
    },

    // put, delete and list report every error, argument conversion included, by rejecting.
    async put(...args) {
      if (args.length < 2) {
        throw argumentError("put", args.length + 1, args.length ? "string or JsObject" : "string");
      }
      const [key, value, rawOptions] = args;
      const name = `${key}`;
      let options = {};
      if (rawOptions !== undefined && rawOptions !== null) {
        if (!isObject(rawOptions)) throw argumentError("put", 3, "PutOptions");
        const { expiration, expirationTtl, metadata } = rawOptions;
        options = {
          expiration: expiration === undefined ? undefined : toInt(expiration),
          expirationTtl: expirationTtl === undefined ? undefined : toInt(expirationTtl),
          metadata,
        };
      }
      await put(name, isObject(value) ? value : `${value}`, options);
    },

    async delete(...args) {
      if (args.length === 0) throw argumentError("delete", 1, "string");
      const name = `${args[0]}`;
      checkKey("DELETE", name);
      await call("delete", { key: name });
    },

    async list(options) {
      const args = {};
      if (options !== undefined && options !== null) {
        if (!isObject(options)) throw argumentError("list", 1, "ListOptions");
        const limit = options.limit === undefined ? undefined : toInt(options.limit);
        if (limit > 0) args.limit = limit;
        if (options.prefix !== undefined && options.prefix !== null)
          args.prefix = `${options.prefix}`;
        if (options.cursor !== undefined && options.cursor !== null)
          args.cursor = `${options.cursor}`;
      }
      const result = await (await callWithBody("list", args)).json();
      result.cacheStatus = null;
      return result;
    },
  };
}
