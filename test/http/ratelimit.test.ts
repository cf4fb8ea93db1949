// The rate limit holds for the cluster: hosts share their counts through the store.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { RateLimiter } from "../../src/http/ratelimit.js";
import { ManualClock } from "../../src/store/clock.js";
import { openStore, type Store, type StoreKind } from "../../src/store/db.js";
import { createTestDatabase, dropTestDatabases } from "../helpers/postgres.js";

after(dropTestDatabases);

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wb-ratelimit-"));

/** Two hosts' connections to one store. */
async function twoHosts(
  kind: StoreKind,
): Promise<{ a: Store; b: Store; close: () => Promise<void> }> {
  if (kind === "sqlite") {
    const dir = tmp();
    const a = await openStore(dir);
    const b = await openStore(dir);
    return { a, b, close: async () => void (await Promise.all([a.destroy(), b.destroy()])) };
  }
  const database = await createTestDatabase();
  const a = await openStore(tmp(), { databaseUrl: database.url });
  const b = await openStore(tmp(), { databaseUrl: database.url });
  return {
    a,
    b,
    close: async () => {
      await Promise.all([a.destroy(), b.destroy()]);
      await database.drop();
    },
  };
}

const minute = 60_000;
/** Five seconds into a clock minute. */
const startMs = Date.UTC(2030, 0, 1) + 5000;

async function storedCount(db: Store): Promise<number> {
  const rows = await db.selectFrom("rate_windows").select("count").execute();
  return rows.reduce((sum, r) => sum + Number(r.count), 0);
}

for (const kind of ["sqlite", "postgres"] as const) {
  test(`${kind}: two hosts share one limit of 10 per minute through the store`, async () => {
    const hosts = await twoHosts(kind);
    try {
      const clock = new ManualClock(startMs);
      const a = new RateLimiter(10, { db: hosts.a, clock, syncMs: 1000 });
      const b = new RateLimiter(10, { db: hosts.b, clock, syncMs: 1000 });
      for (let i = 0; i < 6; i++) {
        assert.equal(a.check("key_1"), null);
        assert.equal(b.check("key_1"), null);
      }
      // Both sync at once, then once more: each has heard of the other's six.
      await Promise.all([a.sync(), b.sync()]);
      await Promise.all([a.sync(), b.sync()]);
      assert.equal(await storedCount(hosts.a), 12);
      for (const host of [a, b]) {
        const refused = host.check("key_1");
        assert.equal(
          refused?.message,
          "Rate limit of 10 requests per minute exceeded; retry in 55 s",
        );
        assert.deepEqual(refused?.headers, {
          "retry-after": "55",
          "x-ratelimit-limit": "10",
          "x-ratelimit-remaining": "0",
        });
      }
      assert.equal(a.check("key_2"), null, "another key has its own count");
      // Refusals are not counted: the cluster let 12 through, the limit plus one interval's.
      await Promise.all([a.sync(), b.sync()]);
      assert.equal(await storedCount(hosts.a), 13);

      clock.advance(minute);
      assert.equal(a.check("key_1"), null, "a new minute allows again");
      assert.equal(b.check("key_1"), null);
      clock.advance(minute);
      assert.equal(a.check("key_1"), null);
      await a.sync();
      const windows = await hosts.a.selectFrom("rate_windows").selectAll().execute();
      assert.deepEqual(
        windows.map((w) => Number(w.window_start)),
        [startMs - 5000 + 2 * minute],
        "windows before the last one are deleted",
      );
    } finally {
      await hosts.close();
    }
  });

  test(`${kind}: started limiters sync in the background, and stop sends what is left`, async () => {
    const hosts = await twoHosts(kind);
    try {
      const a = new RateLimiter(10, { db: hosts.a, syncMs: 20 });
      const b = new RateLimiter(10, { db: hosts.b, syncMs: 20 });
      a.start();
      b.start();
      for (let i = 0; i < 6; i++) {
        assert.equal(a.check("key_1"), null);
        assert.equal(b.check("key_1"), null);
      }
      const deadline = Date.now() + 5000;
      let answers: unknown[] = [];
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        // Probe without counting: a refused check is not counted.
        answers = [a.check("key_1"), b.check("key_1")];
        if (answers.every((x) => x !== null)) break;
      }
      assert.ok(
        answers.every((x) => x !== null),
        "both hosts refuse once they have synced",
      );
      await Promise.all([a.stop(), b.stop()]);

      const c = new RateLimiter(10, { db: hosts.a, syncMs: 60_000 });
      c.start();
      assert.equal(c.check("key_3"), null);
      assert.equal(c.check("key_3"), null);
      await c.stop();
      const row = await hosts.b
        .selectFrom("rate_windows")
        .select("count")
        .where("key_id", "=", "key_3")
        .executeTakeFirst();
      assert.equal(Number(row?.count), 2);
    } finally {
      await hosts.close();
    }
  });

  test(`${kind}: a store that fails does not make check throw or wait; the limit holds per host`, async () => {
    const hosts = await twoHosts(kind);
    try {
      const clock = new ManualClock(startMs);
      const lines: string[] = [];
      const limiter = new RateLimiter(3, {
        db: hosts.a,
        clock,
        syncMs: 1000,
        log: (line) => lines.push(line),
      });
      assert.equal(limiter.check("key_1"), null);
      await limiter.sync();
      await hosts.a.destroy();
      assert.equal(limiter.check("key_1"), null);
      await limiter.sync();
      await limiter.sync();
      assert.equal(limiter.check("key_1"), null);
      assert.notEqual(limiter.check("key_1"), null, "the fourth request is refused");
      assert.equal(lines.length, 1, "a failing sync is logged once");
      assert.match(lines[0]!, /^rate-limit sync failed/);
      await limiter.stop();
      assert.equal(await storedCount(hosts.b), 1);
    } finally {
      await hosts.close();
    }
  });

  test(`${kind}: with the limit off nothing counts and nothing touches the store`, async () => {
    const hosts = await twoHosts(kind);
    try {
      // A store that fails: a limiter that used it would log the failure.
      await hosts.a.destroy();
      const limiter = new RateLimiter(0, {
        db: hosts.a,
        syncMs: 1,
        log: (line) => assert.fail(line),
      });
      limiter.start();
      for (let i = 0; i < 100; i++) assert.equal(limiter.check("key_1"), null);
      await new Promise((resolve) => setTimeout(resolve, 20));
      await limiter.sync();
      await limiter.stop();
      assert.equal(await storedCount(hosts.b), 0);
    } finally {
      await hosts.close();
    }
  });
}
