import assert from "node:assert/strict";
import http from "node:http";
import { describe, it } from "node:test";
import { idempotencyKey, type RunState } from "../../src/workflows/steps.js";

const state = { id: "e1", entries: { grüßen: 2, plain: 3 } } as unknown as RunState;

describe("step idempotency keys", () => {
  it("are execution, step and entry; a step id no header can carry is percent-encoded", () => {
    assert.equal(idempotencyKey(state, "plain"), "e1:plain:3");
    assert.equal(idempotencyKey(state, "with space\tand tab"), "e1:with space\tand tab:1");
    // Saving refuses such ids; definitions stored before that still run.
    const key = idempotencyKey(state, "grüßen");
    assert.equal(key, "e1:gr%C3%BC%C3%9Fen:2");
    for (const id of ["grüßen", "a\r\nb", "nul\u0000", "emoji 😀", "lone \ud800"]) {
      const k = idempotencyKey(state, id);
      assert.doesNotThrow(() => http.validateHeaderValue("x-idempotency-key", k), k);
      assert.match(k, /^[\t\x20-\x7e]+$/);
    }
  });
});
