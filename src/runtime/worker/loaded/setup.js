// Loaded beside every function, before its code: captures console.* per invocation (an
// AsyncLocalStorage context per request, so concurrent requests in one isolate keep their
// own lines) and formats arguments the way Node's console.log does.
//
// This module is evaluated before the function's own module, so it captures here every
// built-in the wrapper relies on (`primordials`): user code may replace globals and
// prototypes, but not these references. None of this is a security boundary: every limit
// is enforced again outside the isolate (the supervisor counts subrequests, the host caps
// the bytes and the metadata that cross). It keeps honest functions' results exact.
import { AsyncLocalStorage } from "node:async_hooks";
import limits from "./workerbase-limits.js";

const apply = Reflect.apply;
const bound =
  (fn) =>
  (self, ...args) =>
    apply(fn, self, args);
export const primordials = Object.freeze({
  Response: globalThis.Response,
  Request: globalThis.Request,
  Headers: globalThis.Headers,
  Uint8Array: globalThis.Uint8Array,
  JSONStringify: JSON.stringify,
  ResponseArrayBuffer: bound(Response.prototype.arrayBuffer),
  ResponseStatus: bound(Object.getOwnPropertyDescriptor(Response.prototype, "status").get),
  ResponseHeaders: bound(Object.getOwnPropertyDescriptor(Response.prototype, "headers").get),
  RequestHeaders: bound(Object.getOwnPropertyDescriptor(Request.prototype, "headers").get),
  HeadersGet: bound(Headers.prototype.get),
  HeadersSet: bound(Headers.prototype.set),
  HeadersDelete: bound(Headers.prototype.delete),
  HeadersEntries: bound(Headers.prototype.entries),
  IteratorNext: bound(Object.getPrototypeOf(new Headers().entries()).next),
  ArrayPush: bound(Array.prototype.push),
  ByteLength: bound(Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, "byteLength").get),
  TypedArraySet: bound(Object.getPrototypeOf(Uint8Array.prototype).set),
  TypedArrayLength: bound(
    Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), "length").get,
  ),
  Encode: bound(TextEncoder.prototype.encode),
  DateToISOString: bound(Date.prototype.toISOString),
  DateParse: Date.parse,
  Apply: Reflect.apply,
  ObjectFreeze: Object.freeze,
  Promise: globalThis.Promise,
  PromiseResolve: Promise.resolve.bind(Promise),
  PromiseAllSettled: Promise.allSettled.bind(Promise),
  PromiseRace: Promise.race.bind(Promise),
  PromiseThen: bound(Promise.prototype.then),
  ArraySlice: bound(Array.prototype.slice),
  SetTimeout: globalThis.setTimeout.bind(globalThis),
  ClearTimeout: globalThis.clearTimeout.bind(globalThis),
  PromiseReject: Promise.reject.bind(Promise),
  ObjectEntries: Object.entries,
  isPrototypeOf: bound(Object.prototype.isPrototypeOf),
});
export { limits };
const P = primordials;

const invocation = new AsyncLocalStorage();
const runInvocation = bound(AsyncLocalStorage.prototype.run);
const currentInvocation = bound(AsyncLocalStorage.prototype.getStore);
const encoder = new TextEncoder();

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function quote(s) {
  return "'" + s.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n") + "'";
}

function join(open, close, entries, indent, prefix = "") {
  if (entries.length === 0) return prefix + open + close;
  const start = entries.length + indent + open.length + prefix.length + 10;
  const total = entries.reduce((n, e) => n + e.length, start + entries.length);
  if (total <= 80 && !entries.some((e) => e.includes("\n"))) {
    return `${prefix}${open} ${entries.join(", ")} ${close}`;
  }
  const pad = "\n" + " ".repeat(indent);
  return `${prefix}${open}${pad}  ${entries.join(`,${pad}  `)}${pad}${close}`;
}

function inspect(value, depth, seen, indent) {
  switch (typeof value) {
    case "string":
      return depth === 0 ? value : quote(value);
    case "number":
      return Object.is(value, -0) ? "-0" : String(value);
    case "bigint":
      return `${value}n`;
    case "symbol":
    case "boolean":
    case "undefined":
      return String(value);
    case "function": {
      const isClass = /^class\b/.test(Function.prototype.toString.call(value));
      if (isClass) return `[class ${value.name || "(anonymous)"}]`;
      return value.name ? `[Function: ${value.name}]` : "[Function (anonymous)]";
    }
  }
  if (value === null) return "null";
  if (value instanceof Error) return value.stack || `${value.name}: ${value.message}`;
  if (value instanceof Date) return isNaN(value) ? "Invalid Date" : value.toISOString();
  if (value instanceof RegExp) return String(value);
  if (seen.includes(value)) return "[Circular *1]";
  if (depth > 2) return Array.isArray(value) ? "[Array]" : "[Object]";
  const next = [...seen, value];
  const child = (v) => inspect(v, depth + 1, next, indent + 2);
  if (Array.isArray(value)) {
    const entries = value.slice(0, 100).map(child);
    if (value.length > 100) entries.push(`... ${value.length - 100} more items`);
    return join("[", "]", entries, indent);
  }
  if (value instanceof Map) {
    const entries = [...value].map(([k, v]) => `${child(k)} => ${child(v)}`);
    return join("{", "}", entries, indent, `Map(${value.size}) `);
  }
  if (value instanceof Set) {
    return join("{", "}", [...value].map(child), indent, `Set(${value.size}) `);
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const items = Array.from(value.slice(0, 100), (v) => String(v));
    return join("[", "]", items, indent, `${value.constructor.name}(${value.length}) `);
  }
  const entries = Object.keys(value).map(
    (k) => `${identifier.test(k) ? k : quote(k)}: ${child(value[k])}`,
  );
  const proto = Object.getPrototypeOf(value);
  const name =
    proto === null
      ? "[Object: null prototype] "
      : proto.constructor && proto.constructor !== Object
        ? `${proto.constructor.name} `
        : "";
  return join("{", "}", entries, indent, name);
}

/** Formats console arguments as Node's util.format does for the common cases. */
export function format(args) {
  if (args.length === 0) return "";
  let rest = args;
  let head = "";
  if (typeof args[0] === "string" && args[0].includes("%")) {
    let i = 1;
    head = args[0].replace(/%([sdifjoOc%])/g, (match, spec) => {
      if (spec === "%") return "%";
      if (i >= args.length) return match;
      const arg = args[i++];
      switch (spec) {
        case "s":
          return typeof arg === "string" ? arg : inspect(arg, 1, [], 0);
        case "d":
        case "i":
          return typeof arg === "object"
            ? "NaN"
            : String(spec === "i" ? parseInt(arg) : Number(arg));
        case "f":
          return String(parseFloat(arg));
        case "j":
          try {
            return JSON.stringify(arg);
          } catch {
            return "[Circular]";
          }
        case "c":
          return "";
        default:
          return inspect(arg, 1, [], 0);
      }
    });
    rest = args.slice(i);
    return [head, ...rest.map((a) => inspect(a, 0, [], 0))].join(" ");
  }
  return rest.map((a) => inspect(a, 0, [], 0)).join(" ");
}

const levels = {
  log: "log",
  info: "info",
  warn: "warn",
  error: "error",
  debug: "debug",
  trace: "debug",
};
/** Adds a line to an invocation's console record, within the limits. */
export function addLine(state, level, message) {
  if (state.full) return;
  const bytes = P.TypedArrayLength(P.Encode(encoder, message));
  const timestamp = P.DateToISOString(new Date());
  if (
    state.lines.length >= limits.maxConsoleLines ||
    state.bytes + bytes > limits.maxConsoleBytes
  ) {
    state.full = true;
    P.ArrayPush(state.lines, {
      level: "warn",
      message: `[workerbase] console output past ${limits.maxConsoleLines} lines or ${limits.maxConsoleBytes} bytes was dropped`,
      timestamp,
    });
    return;
  }
  state.bytes += bytes;
  P.ArrayPush(state.lines, { level, message, timestamp });
}

for (const [method, level] of Object.entries(levels)) {
  console[method] = (...args) => {
    const state = currentInvocation(invocation);
    if (!state || state.full) return;
    addLine(state, level, String(format(args)));
  };
}

// Every fetch carries its invocation's token, by which the supervisor's egress counts and caps
// subrequests (Cloudflare caps them per invocation). Counted here too only to fail early.
const originalFetch = globalThis.fetch;
export const SUBREQUEST_HEADER = "x-workerbase-subrequest";
globalThis.fetch = function fetch(input, init) {
  const state = currentInvocation(invocation);
  if (state && ++state.subrequests > limits.maxSubrequests) {
    return P.PromiseReject(
      new Error(
        `Too many subrequests: a function may make at most ${limits.maxSubrequests} fetches per invocation`,
      ),
    );
  }
  let request;
  try {
    request = new P.Request(input, init);
  } catch (err) {
    return P.PromiseReject(err);
  }
  if (state) P.HeadersSet(P.RequestHeaders(request), SUBREQUEST_HEADER, state.token);
  return originalFetch(request);
};

/** Runs `fn` with a fresh console buffer and subrequest count for one invocation. */
export function withInvocation(token, fn) {
  const state = { lines: [], bytes: 0, full: false, subrequests: 0, token, pending: [] };
  return runInvocation(invocation, state, () => fn(state));
}
