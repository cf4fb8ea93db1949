import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeLoadError, prepareModule } from "../../src/functions/code.js";
import { slugify } from "../../src/functions/schema.js";
import { isStrippedHeader, statusOf } from "../../src/functions/invoke.js";
import { RateLimiter } from "../../src/http/ratelimit.js";
import { renderConfig } from "../../src/runtime/config.js";
import { SecretBox } from "../../src/secrets/crypto.js";

describe("preparing a function's module", () => {
  it("adds the export a top-level handler needs and leaves an exported one alone", () => {
    const plain = prepareModule(
      "async function handler(request, env) { return new Response('x'); }",
    );
    assert.ok(plain.ok && plain.module.endsWith("export { handler };\n"));
    const exported = "export async function handler() { return new Response('x'); }";
    assert.deepEqual(prepareModule(exported), { ok: true, module: exported });
    const arrow = prepareModule("const handler = async () => new Response('x');");
    assert.ok(arrow.ok && arrow.module.includes("export { handler }"));
  });

  it("takes Workers module syntax as written; refuses a default object without fetch or scheduled, and code with neither shape", () => {
    const module = "export default { fetch() { return new Response('x'); } }";
    assert.deepEqual(prepareModule(module), { ok: true, module });
    const app = "const app = makeApp();\nexport { app as default };";
    assert.deepEqual(prepareModule(app), { ok: true, module: app });
    const def = prepareModule("export default { hello() {} }");
    assert.equal(def.ok, false);
    assert.match(
      !def.ok ? def.error : "",
      /neither `fetch` nor `scheduled`.*async function handler\(request, env, ctx\).*export default \{ async fetch/,
    );
    const none = prepareModule("async function main() {}");
    assert.match(!none.ok ? none.error : "", /No top-level `handler`.*export default/);
  });

  it("leaves syntax errors to the runtime, whose message gives line and column", () => {
    const bad = prepareModule("async function handler() {\n  return (;\n}");
    assert.deepEqual([bad.ok, !bad.ok && bad.parsed], [false, false]);
    const message =
      "Failed to start Worker:\nUncaught SyntaxError: Unexpected token ';'\n  at function.js:2:11";
    assert.equal(
      describeLoadError(message),
      "SyntaxError: Unexpected token ';' at line 2, column 11",
    );
  });
});

describe("slugs", () => {
  it("are lowercase with hyphens, never empty, never UUID-shaped", () => {
    assert.equal(slugify("Hello, World!"), "hello-world");
    assert.equal(slugify("  Ünïcödé  name "), "unicode-name");
    assert.equal(slugify("!!!"), "function");
    assert.equal(
      slugify("0b2f3c4d-1111-4222-8333-944455556666"),
      "fn-0b2f3c4d-1111-4222-8333-944455556666",
    );
  });
});

describe("invoke rules", () => {
  it("strips credentials, proxy and hop-by-hop headers and passes the rest", () => {
    for (const h of [
      "x-api-key",
      "authorization",
      "cookie",
      "proxy-authorization",
      "forwarded",
      "x-forwarded-for",
      "x-real-ip",
      "via",
      "x-workerbase-worker",
      "connection",
      "host",
    ]) {
      assert.equal(isStrippedHeader(h), true, h);
    }
    for (const h of ["x-webhook-event", "x-hub-signature-256", "content-type", "user-agent"]) {
      assert.equal(isStrippedHeader(h), false, h);
    }
    assert.equal(isStrippedHeader("x-custom-hop", new Set(["x-custom-hop"])), true);
  });

  it("maps results to statuses: timeout 504, runtime unavailable 503, other failures 500", () => {
    const base = { headers: [], body: Buffer.alloc(0), logs: [] };
    assert.equal(statusOf({ ...base, kind: "ok", status: 418 }), 418);
    assert.equal(statusOf({ ...base, kind: "timeout", status: 500 }), 504);
    assert.equal(statusOf({ ...base, kind: "crashed", status: 503 }), 503);
    assert.equal(statusOf({ ...base, kind: "threw", status: 500 }), 500);
  });
});

describe("rate limiter", () => {
  it("allows the limit per key per minute, then answers with Retry-After", () => {
    const limiter = new RateLimiter(2);
    assert.equal(limiter.check("k", 0), null);
    assert.equal(limiter.check("k", 1000), null);
    const third = limiter.check("k", 2000);
    assert.equal(third?.headers["retry-after"], "58");
    assert.equal(third?.headers["x-ratelimit-remaining"], "0");
    assert.equal(limiter.check("other", 2000), null);
    assert.equal(limiter.check("k", 60_000), null);
    assert.equal(new RateLimiter(0).check("k"), null);
  });
});

describe("secret sealing", () => {
  it("round-trips, uses a fresh nonce each time, and refuses another owner's context", () => {
    const box = new SecretBox(Buffer.alloc(32, 1));
    const a = box.seal("value", "p/f/NAME");
    const b = box.seal("value", "p/f/NAME");
    assert.notDeepEqual(a, b);
    assert.ok(!a.includes(Buffer.from("value")));
    assert.equal(box.open(a, "p/f/NAME"), "value");
    assert.throws(() => box.open(a, "p/other/NAME"));
  });
});

describe("workerd config rendering", () => {
  it("renders the typed model as Cap'n Proto text and refuses values that need escaping", () => {
    const text = renderConfig({
      services: [
        {
          name: "w",
          worker: {
            modules: [{ name: "a.js", esModule: { embed: "a.js" } }],
            compatibilityDate: "2025-11-17",
            compatibilityFlags: [],
            bindings: [{ name: "T", fromEnvironment: "X" }],
          },
        },
        { name: "net", network: { allow: ["public"] } },
      ],
      sockets: [{ name: "http", address: "127.0.0.1:0", service: "w" }],
      v8Flags: ["--max-old-space-size=128"],
    });
    assert.match(text, /^# Generated by Workerbase/);
    assert.match(text, /esModule = embed "a.js"/);
    assert.match(text, /fromEnvironment = "X"/);
    assert.match(text, /v8Flags = \["--max-old-space-size=128"\]/);
    assert.throws(() =>
      renderConfig({
        services: [],
        sockets: [{ name: "x\ny", address: "a", service: "b" }],
        v8Flags: [],
      }),
    );
  });
});
