import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FunctionCreate } from "../../src/functions/schema.js";
import { clientKey, KeyGuard } from "../../src/http/keyguard.js";
import { parse, tooDeep } from "../../src/http/validate.js";
import { loadConfig } from "../../src/host/config.js";

describe("counting wrong keys per client address", () => {
  it("refuses an address past the bound until its minute is over, driven by a clock", async () => {
    let now = 1_000_000;
    const guard = new KeyGuard(3, () => now);
    const lookup = (key: string) => (key === "right-key-0123456789" ? "identity" : null);
    for (let i = 0; i < 3; i++) assert.equal(await guard.verify("10.0.0.1", "wrong", lookup), null);
    await assert.rejects(guard.verify("10.0.0.1", "right-key-0123456789", lookup), (err: any) => {
      assert.equal(err.status, 429);
      assert.match(err.message, /more than 3 in a minute\); retry in 60 s$/);
      assert.equal(err.headers["retry-after"], "60");
      return true;
    });
    // The invoke route's form ignores the key instead: unknown and unauthorized stay alike.
    assert.equal(await guard.verifyOrIgnore("10.0.0.1", "right-key-0123456789", lookup), null);
    // Other addresses, and requests without a key, are not affected.
    assert.equal(await guard.verify("10.0.0.2", "right-key-0123456789", lookup), "identity");
    assert.equal(await guard.verify("10.0.0.2", undefined, lookup), null);
    now += 45_000;
    assert.match(guard.refusal("10.0.0.1")!.message, /retry in 15 s$/);
    now += 15_000;
    assert.equal(guard.refusal("10.0.0.1"), null);
    assert.equal(await guard.verify("10.0.0.1", "right-key-0123456789", lookup), "identity");
  });

  it("counts an IPv6 client by its /64 and an IPv4-mapped one as IPv4", () => {
    assert.equal(clientKey("::ffff:127.0.0.1"), "127.0.0.1");
    assert.equal(clientKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    assert.equal(clientKey("2001:db8:1:2:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64");
    assert.equal(clientKey("::1"), "0:0:0:0::/64");
    assert.equal(clientKey(undefined), null);
  });
});

describe("JSON nesting", () => {
  it("names the first keys of the path past the bound", () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    assert.equal(tooDeep({ a: { b: deep } }, 64), "a.b.0.0.0…");
    assert.equal(tooDeep({ a: [[1]] }, 3), null);
    assert.equal(tooDeep({ a: [[[1]]] }, 3), "a.0.0");
  });

  it("refuses a tool input_schema nested deeper than 64 levels, naming the field", () => {
    let schema: Record<string, unknown> = { type: "object" };
    for (let i = 0; i < 40; i++) schema = { type: "object", properties: { a: schema } };
    assert.throws(
      () =>
        parse(FunctionCreate, {
          name: "x",
          code: "x",
          tool: { name: "t", description: "d", input_schema: schema },
        }),
      (err: any) => {
        assert.equal(err.status, 400);
        assert.equal(err.details[0].field, "tool.input_schema");
        assert.match(err.message, /must not nest deeper than 64 levels/);
        return true;
      },
    );
  });
});

describe("operator-set keys", () => {
  it("are refused shorter than 16 characters, with a sentence that does not show them", () => {
    assert.throws(
      () => loadConfig([], { WORKERBASE_ADMIN_KEY: "tooshort" }),
      /^Error: WORKERBASE_ADMIN_KEY is 8 characters long; a key you set must be at least 16 characters/,
    );
    assert.equal(
      loadConfig([], { WORKERBASE_API_KEY: "0123456789abcdef" }).apiKey,
      "0123456789abcdef",
    );
  });
});
