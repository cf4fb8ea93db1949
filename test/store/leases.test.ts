import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { Insertable } from "kysely";
import { ManualClock } from "../../src/store/clock.js";
import { openStore, type Store } from "../../src/store/db.js";
import { claim, release, renew } from "../../src/store/leases.js";
import type { WorkflowExecutionsTable } from "../../src/store/schema.js";
import { executionLeases as spec } from "../../src/workflows/store.js";
import { createTestDatabase, dialects, dropTestDatabases } from "../helpers/postgres.js";

after(dropTestDatabases);

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wb-leases-"));
const leaseMs = 30_000;

/** Running executions with no holder: work for any host. */
async function work(db: Store, n: number, prefix: string): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, "0")}`);
  const rows: Insertable<WorkflowExecutionsTable>[] = ids.map((id) => ({
    id,
    project_id: "p",
    workflow_id: "w",
    version_id: "v",
    workflow_name: "w",
    status: "running",
    vars: "{}",
    context: "{}",
    system: "{}",
    metadata: "{}",
    current_step_id: "start",
    step_entries: "{}",
    lease_owner: null,
    due_at: null,
    created_at: "x",
    updated_at: "x",
  }));
  for (let i = 0; i < rows.length; i += 100)
    await db
      .insertInto("workflow_executions")
      .values(rows.slice(i, i + 100))
      .execute();
  return ids;
}

const ids = (rows: Array<{ id: string }>) => rows.map((r) => r.id);

/** Claims in batches of `batch` until nothing is left; what each claimer got. */
async function drain(db: Store, owner: string, clock: ManualClock, batch: number) {
  const got: string[] = [];
  for (;;) {
    const rows = await claim(db, spec, { owner, now: clock.now(), leaseMs, limit: batch });
    if (rows.length === 0) return got;
    got.push(...ids(rows));
  }
}

function assertSplit(all: string[], parts: string[][]) {
  const seen = new Set<string>();
  for (const part of parts)
    for (const id of part) {
      assert.ok(!seen.has(id), `${id} was claimed twice`);
      seen.add(id);
    }
  assert.deepEqual([...seen].sort(), [...all].sort());
}

for (const dialect of dialects) {
  describe(`leases on ${dialect.kind}`, () => {
    it("owners claiming the same table at once never get the same item", async () => {
      const store = await dialect.open(tmp());
      try {
        const all = await work(store.db, 300, "c");
        const clock = new ManualClock();
        const parts = await Promise.all(
          ["a", "b", "a", "b", "c", "c"].map((owner, i) => drain(store.db, owner, clock, 3 + i)),
        );
        assertSplit(all, parts);
        const owners = await store.db
          .selectFrom("workflow_executions")
          .select(["id", "lease_owner", "due_at"])
          .execute();
        for (const r of owners) assert.equal(r.due_at, clock.now() + leaseMs);
      } finally {
        await store.close();
      }
    });

    it("an item held by A is B's only once A's lease ran out; renewing extends it", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      try {
        const [item] = await work(db, 1, "h");
        const clock = new ManualClock();
        const at = (owner: string) =>
          claim(db, spec, { owner, now: clock.now(), leaseMs, limit: 10 }).then(ids);
        assert.deepEqual(await at("host-a"), [item]);
        assert.deepEqual(await at("host-b"), []);
        clock.advance(leaseMs - 1);
        assert.deepEqual(await at("host-b"), [], "not while the lease lasts");
        assert.deepEqual(await renew(db, spec, [item], "host-a", clock.now() + leaseMs), [item]);
        clock.advance(leaseMs - 1);
        assert.deepEqual(await at("host-b"), [], "the renewed lease still lasts");
        clock.advance(1);
        assert.deepEqual(await at("host-b"), [item], "then B takes it");
        assert.deepEqual(
          await renew(db, spec, [item], "host-a", clock.now() + leaseMs),
          [],
          "A no longer holds it",
        );
        assert.deepEqual(await at("host-a"), []);
        const row = await db
          .selectFrom("workflow_executions")
          .selectAll()
          .executeTakeFirstOrThrow();
        assert.equal(row.lease_owner, "host-b");
        assert.equal(row.due_at, clock.now() + leaseMs);
      } finally {
        await store.close();
      }
    });

    it("a release frees the item at once, and only its holder can release it", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      try {
        const [item] = await work(db, 1, "r");
        const clock = new ManualClock();
        const at = (owner: string) =>
          claim(db, spec, { owner, now: clock.now(), leaseMs, limit: 10 }).then(ids);
        assert.deepEqual(await at("host-a"), [item]);
        await release(db, spec, [item], "host-b");
        assert.deepEqual(await at("host-b"), [], "B's release did nothing");
        await release(db, spec, [item], "host-a");
        assert.deepEqual(await at("host-b"), [item]);
      } finally {
        await store.close();
      }
    });

    it("a host's own items are claimable again at once with ownToo (after its restart)", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      try {
        const [item] = await work(db, 1, "o");
        const clock = new ManualClock();
        const at = (owner: string, ownToo: boolean) =>
          claim(db, spec, { owner, now: clock.now(), leaseMs, limit: 10, ownToo }).then(ids);
        assert.deepEqual(await at("host-a", false), [item]);
        assert.deepEqual(await at("host-a", false), []);
        assert.deepEqual(await at("host-b", true), [], "another host's ownToo is no key");
        assert.deepEqual(await at("host-a", true), [item]);
      } finally {
        await store.close();
      }
    });

    it("claims take eligible items only, in order, at most the limit", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      try {
        const all = await work(db, 5, "e");
        await db
          .updateTable("workflow_executions")
          .set({ status: "waiting", due_at: 0 })
          .where("id", "=", all[0]!)
          .execute();
        const clock = new ManualClock();
        for (const [i, id] of all.entries())
          await db
            .updateTable("workflow_executions")
            .set({ due_at: clock.now() - 10 + ((i * 3) % 5) })
            .where("id", "=", id)
            .where("status", "=", "running")
            .execute();
        const got = await claim(db, spec, { owner: "a", now: clock.now(), leaseMs, limit: 3 });
        // due_at -10 + {0, 3, 1, 4, 2}: the oldest leases, the waiting one never.
        assert.deepEqual(ids(got).sort(), [all[1], all[2], all[4]]);
      } finally {
        await store.close();
      }
    });
  });
}

describe("leases across stores", () => {
  it("postgres: two stores on one database split concurrent claims without overlap", async () => {
    const database = await createTestDatabase();
    const one = await openStore(tmp(), { databaseUrl: database.url });
    const two = await openStore(tmp(), { databaseUrl: database.url });
    try {
      const all = await work(one, 1000, "pg");
      const clock = new ManualClock();
      const parts = await Promise.all(
        [one, two, one, two, one, two, one, two].map((db, i) =>
          drain(db, i % 2 ? "host-two" : "host-one", clock, 5 + (i % 3)),
        ),
      );
      assertSplit(all, parts);
      assert.ok(parts[0]!.length > 0 && parts[1]!.length > 0, "both stores got work");
    } finally {
      await one.destroy();
      await two.destroy();
      await database.drop();
    }
  });

  it("sqlite: two stores on one file split concurrent claims without overlap", async () => {
    const dir = tmp();
    const one = await openStore(dir);
    const two = await openStore(dir);
    try {
      const all = await work(one, 300, "lite");
      const clock = new ManualClock();
      const parts = await Promise.all(
        [one, two, one, two].map((db, i) => drain(db, `host-${i}`, clock, 4)),
      );
      assertSplit(all, parts);
    } finally {
      await one.destroy();
      await two.destroy();
    }
  });
});
