// Loaded beside every function, before its code: captures console.* per invocation (an
// AsyncLocalStorage context per request, so concurrent requests in one isolate keep their
// own lines) and formats arguments the way Node's console.log does.
import { AsyncLocalStorage } from "node:async_hooks";

const invocation = new AsyncLocalStorage();
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
for (const [method, level] of Object.entries(levels)) {
  console[method] = (...args) => {
    const state = invocation.getStore();
    if (!state || state.full) return;
    const message = format(args);
    const bytes = encoder.encode(message).byteLength;
    if (state.lines.length >= state.maxLines || state.bytes + bytes > state.maxBytes) {
      state.full = true;
      state.lines.push({
        level: "warn",
        message: `[workerbase] console output past ${state.maxLines} lines or ${state.maxBytes} bytes was dropped`,
        timestamp: new Date().toISOString(),
      });
      return;
    }
    state.bytes += bytes;
    state.lines.push({ level, message, timestamp: new Date().toISOString() });
  };
}

// Cloudflare caps subrequests per invocation; so do we, counting each fetch in the context.
const originalFetch = globalThis.fetch;
globalThis.fetch = function fetch(input, init) {
  const state = invocation.getStore();
  if (state && ++state.subrequests > state.maxSubrequests) {
    return Promise.reject(
      new Error(
        `Too many subrequests: a function may make at most ${state.maxSubrequests} fetches per invocation`,
      ),
    );
  }
  return originalFetch(input, init);
};

/** Runs `fn` with a fresh console buffer and subrequest count for one invocation. */
export function withInvocation(limits, fn) {
  const state = {
    lines: [],
    bytes: 0,
    full: false,
    maxLines: limits.maxConsoleLines,
    maxBytes: limits.maxConsoleBytes,
    subrequests: 0,
    maxSubrequests: limits.maxSubrequests,
  };
  return invocation.run(state, () => fn(state));
}
