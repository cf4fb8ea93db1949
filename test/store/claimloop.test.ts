import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { ClaimLoop } from "../../src/store/claimloop.js";
import { ManualClock } from "../../src/store/clock.js";
import type { Store } from "../../src/store/db.js";
import { claim, release, renew } from "../../src/store/leases.js";
import { executionLeases as spec, type ExecutionRow } from "../../src/workflows/store.js";
import { dialects, dropTestDatabases } from "../helpers/postgres.js";

after(dropTestDatabases);

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wb-claimloop-"));
const leaseMs = 300;

async function insert(db: Store, id: string, owner: string | null, dueAt: number | null) {
  await db
    .insertInto("workflow_executions")
    .values({
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
      lease_owner: owner,
      due_at: dueAt,
      created_at: "x",
      updated_at: "x",
    })
    .execute();
}

const lease = (db: Store, id: string) =>
  db
    .selectFrom("workflow_executions")
    .select(["lease_owner", "due_at"])
    .where("id", "=", id)
    .executeTakeFirstOrThrow();

/** A loop over running executions whose runs last until the test ends them. */
function loopOf(db: Store, hostId: string, clock: ManualClock) {
  const ran: string[] = [];
  const gates = new Map<string, () => void>();
  const ended = (id: string) => gates.get(id)?.();
  const loop = new ClaimLoop<ExecutionRow>({
    name: "test",
    pollMs: 20,
    maxInFlight: 10,
    leaseMs,
    clock,
    key: (r) => r.id,
    claim: (limit, { now, ownToo }) =>
      claim(db, spec, { owner: hostId, now, leaseMs, limit, ownToo }),
    run: async (r) => {
      ran.push(r.id);
      await new Promise<void>((resolve) => gates.set(r.id, resolve));
      // Done, as a real run would leave it: no longer work to claim.
      await db
        .updateTable("workflow_executions")
        .set({ status: "ended" })
        .where("id", "=", r.id)
        .execute();
    },
    renew: (items, now) =>
      renew(
        db,
        spec,
        items.map((r) => r.id),
        hostId,
        now + leaseMs,
      ),
    release: (items) =>
      release(
        db,
        spec,
        items.map((r) => r.id),
        hostId,
      ),
    log: () => {},
  });
  return { loop, ran, ended };
}

async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (let i = 0; i < 250; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail("the condition never held");
}

for (const dialect of dialects) {
  describe(`the claim loop on ${dialect.kind}`, () => {
    it("renews the leases of items in flight, so no other host takes them", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      const clock = new ManualClock();
      const { loop, ran, ended } = loopOf(db, "host-a", clock);
      try {
        await insert(db, "e1", null, null);
        await loop.start();
        assert.deepEqual(ran, ["e1"]);
        clock.advance(10 * leaseMs);
        const steal = () =>
          claim(db, spec, { owner: "host-b", now: clock.now(), leaseMs, limit: 10 });
        await loop.renew();
        assert.deepEqual(await lease(db, "e1"), {
          lease_owner: "host-a",
          due_at: clock.now() + leaseMs,
        });
        assert.deepEqual(await steal(), []);
        clock.advance(10 * leaseMs);
        // The timer renews every third of the lease on its own.
        await eventually(async () =>
          (await lease(db, "e1")).due_at === clock.now() + leaseMs ? true : undefined,
        );
        assert.deepEqual(await steal(), []);
        ended("e1");
        await eventually(() => (loop.inFlight() === 0 ? true : undefined));
      } finally {
        await loop.stop(Date.now());
        await store.close();
      }
    });

    it("stop waits for running items until the deadline, then hands them back at once", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      const clock = new ManualClock();
      const { loop, ran, ended } = loopOf(db, "host-a", clock);
      try {
        await insert(db, "done", null, null);
        await insert(db, "stuck", null, null);
        await loop.start();
        assert.deepEqual(ran.sort(), ["done", "stuck"]);
        const stopped = loop.stop(Date.now() + 100);
        ended("done");
        await stopped;
        assert.equal((await lease(db, "done")).lease_owner, "host-a", "it ended in time");
        assert.deepEqual(await lease(db, "stuck"), { lease_owner: null, due_at: null });
        const other = await claim(db, spec, {
          owner: "host-b",
          now: clock.now(),
          leaseMs,
          limit: 10,
        });
        assert.deepEqual(
          other.map((r) => r.id),
          ["stuck"],
        );
      } finally {
        await store.close();
      }
    });

    it("takes back this host's own items at start, and finds new work when kicked", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      const clock = new ManualClock();
      await insert(db, "mine", "host-a", clock.now() + 1_000_000);
      await insert(db, "theirs", "host-b", clock.now() + 1_000_000);
      const { loop, ran, ended } = loopOf(db, "host-a", clock);
      try {
        await loop.start();
        assert.deepEqual(ran, ["mine"], "its own item at once, not another host's");
        ended("mine");
        await eventually(() => (loop.inFlight() === 0 ? true : undefined));
        await insert(db, "new", null, null);
        loop.kick();
        await eventually(() => (ran.includes("new") ? true : undefined));
        assert.ok(!ran.includes("theirs"));
        assert.equal(ran.filter((id) => id === "mine").length, 1, "its own item ran once");
        ended("new");
      } finally {
        await loop.stop(Date.now() + 1000);
        await store.close();
      }
    });

    it("an adopted item runs at once, or after the run of the same key ends", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      const clock = new ManualClock();
      const { loop, ran, ended } = loopOf(db, "host-a", clock);
      try {
        await insert(db, "a1", "host-a", clock.now() + leaseMs);
        const row = await db
          .selectFrom("workflow_executions")
          .selectAll()
          .executeTakeFirstOrThrow();
        assert.ok(loop.adopt(row));
        assert.ok(loop.adopt(row));
        assert.deepEqual(ran, ["a1"], "the second waits for the first");
        ended("a1");
        await eventually(() => (ran.length === 2 ? true : undefined));
        ended("a1");
        await loop.stop(Date.now() + 1000);
        assert.equal(loop.adopt(row), false, "not after stop");
      } finally {
        await loop.stop(Date.now());
        await store.close();
      }
    });
  });
}
