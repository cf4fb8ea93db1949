import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dbBindingHandler } from "../../src/db/binding.js";
import type { DbExecutor } from "../../src/db/executor.js";

const project = "00000000-0000-4000-8000-000000000001";

/** The host side of env.DB with an executor that records what reaches it. */
function handler() {
  const ran: unknown[] = [];
  const executor = {
    query: async (projectId: string, queries: unknown) => {
      ran.push([projectId, queries]);
      return [];
    },
  } as unknown as DbExecutor;
  const handle = dbBindingHandler(executor, {
    maxRequestBytes: 1024,
    defaultTimeoutMs: 1000,
    maxTimeoutMs: 5000,
  });
  const post = (op: string, body: unknown) =>
    handle(
      project,
      op,
      new Request("http://host/", { method: "POST", body: JSON.stringify(body) }),
    );
  return { ran, post };
}

describe("the host side of env.DB", () => {
  it("runs only the query operation", async () => {
    const { ran, post } = handler();
    const ok = await post("query", { queries: [{ sql: "SELECT 1" }] });
    assert.equal(ok.status, 200);
    assert.equal(ran.length, 1);
    for (const op of ["../kv/list", "query/../list", "list", "Query", "query ", ""]) {
      const res = await post(op, { queries: [{ sql: "SELECT 1" }] });
      assert.equal(res.status, 400, op);
      assert.match(((await res.json()) as { error: string }).error, /^unknown database operation/);
    }
    assert.equal(ran.length, 1);
  });
});
