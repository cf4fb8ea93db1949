import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { openStore, storeKind, StoreStartError } from "../../src/store/db.js";
import { createTestDatabase, dialects, dropTestDatabases } from "../helpers/postgres.js";

after(dropTestDatabases);

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wb-store-"));

for (const dialect of dialects) {
  test(`${dialect.kind}: the store migrates and keeps bytes, big epoch values and NULs`, async () => {
    const store = await dialect.open(tmp());
    try {
      assert.equal(storeKind(store.db), dialect.kind);
      const at = Date.UTC(2100, 0, 1); // past int4 and past 2038 in seconds
      await store.db
        .insertInto("changes")
        .values({ topic: "function", key: "a\u0000b", at })
        .execute();
      const row = await store.db.selectFrom("changes").selectAll().executeTakeFirstOrThrow();
      assert.equal(row.at, at);
      assert.equal(typeof row.seq, "number");
      assert.equal(row.key, dialect.kind === "sqlite" ? "a\u0000b" : "a\uFFFDb");
      await store.db
        .insertInto("projects")
        .values({ id: "p", name: "p", created_at: "x" })
        .execute();
      await store.db
        .insertInto("kv")
        .values({
          project_id: "p",
          key: Buffer.from([0, 255, 1]),
          value: Buffer.from("v"),
          metadata: null,
          expiration: 4_102_444_800,
        })
        .execute();
      const kv = await store.db.selectFrom("kv").selectAll().executeTakeFirstOrThrow();
      assert.deepEqual([...kv.key], [0, 255, 1]);
      assert.equal(kv.expiration, 4_102_444_800);
    } finally {
      await store.close();
    }
  });
}

test("postgres: hosts starting together on an empty database migrate it once and all come up", async () => {
  const database = await createTestDatabase();
  const stores = await Promise.all(
    [1, 2, 3, 4].map(() => openStore(tmp(), { databaseUrl: database.url })),
  );
  const { rows } = await database.admin(
    "select 1", // the admin connection is on the server's default database
  );
  assert.equal(rows.length, 1);
  const applied = await stores[0]!
    .selectFrom("kysely_migration" as never)
    .select("name" as never)
    .execute();
  assert.ok(applied.length >= 4);
  await Promise.all(stores.map((s) => s.destroy()));
});

test("postgres: an unreachable or non-PostgreSQL DATABASE_URL fails the start in one sentence", async () => {
  await assert.rejects(
    openStore(tmp(), { databaseUrl: "postgres://postgres@127.0.0.1:1/none" }),
    (err: Error) =>
      err instanceof StoreStartError &&
      /Cannot connect to PostgreSQL at 127\.0\.0\.1:1/.test(err.message),
  );
  await assert.rejects(
    openStore(tmp(), { databaseUrl: "mysql://root@127.0.0.1/x" }),
    /DATABASE_URL must be a postgres:\/\/ URL/,
  );
  // Redis answers on 6379 on this machine kind; any TCP server that is not PostgreSQL will do.
  const net = await import("node:net");
  const fake = net.createServer((s) => s.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
  await new Promise<void>((r) => fake.listen(0, "127.0.0.1", () => r()));
  const port = (fake.address() as import("node:net").AddressInfo).port;
  await assert.rejects(
    openStore(tmp(), { databaseUrl: `postgres://postgres@127.0.0.1:${port}/x` }),
    (err: Error) =>
      err instanceof StoreStartError && /does not answer as PostgreSQL does/.test(err.message),
  );
  fake.close();
});
