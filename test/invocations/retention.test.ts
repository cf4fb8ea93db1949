// Invocation records are pruned by age and per function, and big batches store, on both engines.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { InvocationRetention } from "../../src/invocations/retention.js";
import { InvocationService } from "../../src/invocations/service.js";
import { invocationStore, type InvocationInsert } from "../../src/invocations/store.js";
import { ManualClock } from "../../src/store/clock.js";
import type { Store } from "../../src/store/db.js";
import { dialects, dropTestDatabases } from "../helpers/postgres.js";

after(dropTestDatabases);

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wb-retention-"));
const dayMs = 24 * 60 * 60_000;
let serial = 0;

function row(functionId: string, atMs: number, id = `inv_${String(++serial).padStart(6, "0")}`) {
  return {
    id,
    function_id: functionId,
    project_id: "p",
    status: "success",
    status_code: 200,
    duration_ms: 1.5,
    request_headers: "{}",
    request_body: null,
    response_body: "ok",
    error_message: null,
    logs: "[]",
    trigger: "api",
    version: 1,
    created_at: new Date(atMs).toISOString(),
  } satisfies InvocationInsert;
}

async function ids(db: Store, functionId: string): Promise<string[]> {
  const rows = await invocationStore.list(db, functionId, undefined, 10_000);
  return rows.map((r) => r.id);
}

const retention = (db: Store, clock: ManualClock, perFunction = 1000, batchRows = 7) =>
  new InvocationRetention(db, {
    retentionMs: 7 * dayMs,
    perFunction,
    intervalMs: 60_000,
    clock,
    log: () => {},
    batchRows,
  });

for (const dialect of dialects) {
  test(`${dialect.kind}: records older than the retention period are pruned, newer ones kept`, async () => {
    const store = await dialect.open(tmp());
    try {
      const clock = new ManualClock(Date.UTC(2030, 0, 1));
      const old = Array.from({ length: 25 }, (_, i) => row("fn_a", clock.now() + i));
      await invocationStore.insertMany(store.db, old);
      clock.advance(7 * dayMs - 1000);
      const fresh = [row("fn_a", clock.now()), row("fn_b", clock.now())];
      await invocationStore.insertMany(store.db, fresh);
      const pruner = retention(store.db, clock);

      assert.deepEqual(await pruner.prune(), { expired: 0, trimmed: 0 });
      assert.equal((await ids(store.db, "fn_a")).length, 26);

      clock.advance(2000); // the 25 old ones are now past 7 days, in batches of 7
      assert.deepEqual(await pruner.prune(), { expired: 25, trimmed: 0 });
      assert.deepEqual(await ids(store.db, "fn_a"), [fresh[0]!.id]);
      assert.deepEqual(await ids(store.db, "fn_b"), [fresh[1]!.id]);
    } finally {
      await store.close();
    }
  });

  test(`${dialect.kind}: a function with more than N records keeps exactly its newest N; others are untouched`, async () => {
    const store = await dialect.open(tmp());
    try {
      const clock = new ManualClock(Date.UTC(2030, 0, 1));
      const t = clock.now();
      // Ties on created_at at the cut: the order records are listed in decides.
      const a = [
        ...Array.from({ length: 12 }, (_, i) => row("fn_a", t + i * 10)),
        row("fn_a", t + 80, "inv_tie_1"),
        row("fn_a", t + 80, "inv_tie_2"),
      ];
      const b = Array.from({ length: 3 }, (_, i) => row("fn_b", t + i));
      await invocationStore.insertMany(store.db, [...a, ...b]);
      const listedA = await ids(store.db, "fn_a");
      const listedB = await ids(store.db, "fn_b");
      const pruner = retention(store.db, clock, 5, 2);

      const first = await pruner.prune();
      assert.deepEqual(first, { expired: 0, trimmed: 9 });
      assert.deepEqual(await ids(store.db, "fn_a"), listedA.slice(0, 5));
      assert.deepEqual(await ids(store.db, "fn_b"), listedB);

      // Later passes look at functions with new records.
      clock.advance(60_000);
      const later = Array.from({ length: 3 }, (_, i) => row("fn_a", clock.now() + i));
      await invocationStore.insertMany(store.db, later);
      const listed = await ids(store.db, "fn_a");
      assert.equal(listed.length, 8);
      assert.deepEqual(await pruner.prune(), { expired: 0, trimmed: 3 });
      assert.deepEqual(await ids(store.db, "fn_a"), listed.slice(0, 5));
      assert.deepEqual(await ids(store.db, "fn_b"), listedB);
    } finally {
      await store.close();
    }
  });

  test(`${dialect.kind}: a started pruner prunes in the background and stops`, async () => {
    const store = await dialect.open(tmp());
    try {
      const clock = new ManualClock(Date.UTC(2030, 0, 1));
      await invocationStore.insertMany(store.db, [row("fn_a", clock.now())]);
      clock.advance(8 * dayMs);
      const pruner = retention(store.db, clock);
      pruner.start();
      const deadline = Date.now() + 5000;
      while ((await ids(store.db, "fn_a")).length > 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 20));
      await pruner.stop();
      assert.deepEqual(await ids(store.db, "fn_a"), []);
    } finally {
      await store.close();
    }
  });

  test(`${dialect.kind}: 6,000 records written in one batch are all stored`, async () => {
    const store = await dialect.open(tmp());
    try {
      const t = Date.UTC(2030, 0, 1);
      const rows = Array.from({ length: 6000 }, (_, i) => row("fn_big", t + i));
      // 6,000 × 13 parameters would be past PostgreSQL's 65,535 in one statement.
      await store.db.transaction().execute((tx) => invocationStore.insertMany(tx, rows));
      assert.equal((await ids(store.db, "fn_big")).length, 6000);

      const service = new InvocationService(store.db, {
        flushMs: 60_000,
        recordBodyBytes: 1024,
        log: (line) => assert.fail(line),
      });
      for (let i = 0; i < 6000; i++)
        service.record({
          id: `svc_${i}`,
          functionId: "fn_svc",
          projectId: "p",
          ok: true,
          statusCode: 200,
          durationMs: 1,
          requestHeaders: {},
          requestBody: null,
          responseBody: null,
          errorMessage: null,
          logs: [],
          trigger: "api",
          version: 1,
          method: "GET",
          path: "/",
          errorStack: null,
          createdAt: new Date(t + i).toISOString(),
        });
      await service.flush();
      assert.equal((await ids(store.db, "fn_svc")).length, 6000);
    } finally {
      await store.close();
    }
  });
}
