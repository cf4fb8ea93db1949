import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { sql } from "kysely";
import { ManualClock } from "../../src/store/clock.js";
import type { Store } from "../../src/store/db.js";
import { KvError, KvService, kvLimits } from "../../src/kv/service.js";
import { dialects, dropTestDatabases, type DialectStore } from "../helpers/postgres.js";
import { eventually } from "../helpers/server.js";

/** The KvError a call fails with (the test fails when it succeeds). */
async function failure(promise: Promise<unknown>): Promise<KvError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof KvError, String(err));
    return err;
  }
  assert.fail("expected a KvError");
}

const text = (s: string) => Buffer.from(s);

after(dropTestDatabases);

// Every rule holds on both engines: the same tests run on SQLite and on PostgreSQL.
for (const dialect of dialects) {
  describe(`KV service on ${dialect.kind}`, () => {
    let dir: string;
    let store: DialectStore;
    let db: Store;
    // A whole second, so that the expiration tests can step to just before and onto one.
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const setTime = (ms: number) => clock.advance(ms - clock.now());
    const nowSeconds = () => Math.floor(clock.now() / 1000);
    let kv: KvService;

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-kv-"));
      store = await dialect.open(dir);
      db = store.db;
      kv = new KvService(db, clock);
    });
    after(async () => {
      await kv.stop();
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** The keys the store holds for a project, expired or not (what a sweep has left). */
    const storedKeys = async (projectId: string) =>
      (await db.selectFrom("kv").select("key").where("project_id", "=", projectId).execute())
        .map((r) => r.key.toString())
        .sort();

    it("puts, gets, replaces and deletes a pair", async () => {
      await kv.put("p1", "k", text("v1"), { metadata: '{"a":1}' });
      let got = await kv.get("p1", "k");
      assert.equal(got?.value.toString(), "v1");
      assert.equal(got?.metadata, '{"a":1}');
      assert.equal(got?.expiration, null);
      await kv.put("p1", "k", text("v2"));
      got = await kv.get("p1", "k");
      assert.equal(got?.value.toString(), "v2");
      assert.equal(got?.metadata, null);
      // A replacement takes every column of the new pair, an expiration too, and back.
      await kv.put("p1", "k", text("v3"), { expirationTtl: 120, metadata: "[3]" });
      got = await kv.get("p1", "k");
      assert.deepEqual(
        [got?.value.toString(), got?.metadata, got?.expiration],
        ["v3", "[3]", nowSeconds() + 120],
      );
      await kv.put("p1", "k", text("v4"));
      got = await kv.get("p1", "k");
      assert.deepEqual([got?.value.toString(), got?.metadata, got?.expiration], ["v4", null, null]);
      assert.deepEqual(await storedKeys("p1"), ["k"]);
      await kv.delete("p1", "k");
      assert.equal(await kv.get("p1", "k"), null);
      await kv.delete("p1", "k"); // absent: no error
    });

    it("keeps projects apart", async () => {
      await kv.put("p2", "same", text("two"));
      await kv.put("p3", "same", text("three"));
      assert.equal((await kv.get("p2", "same"))?.value.toString(), "two");
      assert.equal((await kv.get("p3", "same"))?.value.toString(), "three");
      await kv.delete("p2", "same");
      assert.equal((await kv.get("p3", "same"))?.value.toString(), "three");
      assert.deepEqual((await kv.list("p3")).keys, [{ name: "same" }]);
      assert.deepEqual((await kv.list("p2")).keys, []);
    });

    it("refuses keys as Cloudflare does", async () => {
      const cases: [string, number, string][] = [
        ["", 400, "Key names must not be empty"],
        [".", 400, 'Illegal key name ".". Please use a different name.'],
        ["..", 400, 'Illegal key name "..". Please use a different name.'],
        ["x\ud800", 400, "Could not URL-decode key name"],
        ["k".repeat(513), 414, "UTF-8 encoded length of 513 exceeds key length limit of 512."],
        ["é".repeat(257), 414, "UTF-8 encoded length of 514 exceeds key length limit of 512."],
      ];
      for (const [key, status, message] of cases) {
        // Called one at a time: a rejection not yet awaited would count as unhandled.
        for (const attempt of [
          () => kv.put("p4", key, text("x")),
          () => kv.get("p4", key),
          () => kv.delete("p4", key),
        ]) {
          const err = await failure(attempt());
          assert.equal(err.wireStatus, status, key);
          assert.equal(err.message, message);
          assert.equal(err.status, 400);
        }
      }
      await kv.put("p4", "k".repeat(512), text("max"));
      await kv.put("p4", "...", text("dots"));
      assert.deepEqual(
        (await kv.list("p4")).keys.map((k) => k.name),
        ["...", "k".repeat(512)],
      );
    });

    it("refuses values, metadata and expirations past the limits, storing nothing", async () => {
      const now = nowSeconds();
      const cases: [() => Promise<unknown>, number, string][] = [
        [
          () => kv.put("p5", "v", Buffer.alloc(kvLimits.maxValueBytes + 1)),
          413,
          "Value length of 26214401 exceeds limit of 26214400.",
        ],
        [
          () => kv.put("p5", "v", null, {}, kvLimits.maxValueBytes + 10),
          413,
          "Value length of 26214410 exceeds limit of 26214400.",
        ],
        [
          () => kv.put("p5", "v", text("x"), { metadata: JSON.stringify("m".repeat(1023)) }),
          413,
          "Metadata length of 1025 exceeds limit of 1024.",
        ],
        [
          () => kv.put("p5", "v", text("x"), { metadata: "{nope" }),
          400,
          "Metadata must be valid JSON",
        ],
        [
          () => kv.put("p5", "v", text("x"), { expirationTtl: 59 }),
          400,
          "Invalid expiration_ttl of 59. Expiration TTL must be at least 60.",
        ],
        [
          () => kv.put("p5", "v", text("x"), { expirationTtl: 0 }),
          400,
          "Invalid expiration_ttl of 0. Please specify integer greater than 0.",
        ],
        [
          () => kv.put("p5", "v", text("x"), { expiration: now }),
          400,
          `Invalid expiration of ${now}. Please specify integer greater than the current number of seconds since the UNIX epoch.`,
        ],
        [
          () => kv.put("p5", "v", text("x"), { expiration: now + 59 }),
          400,
          `Invalid expiration of ${now + 59}. Expiration times must be at least 60 seconds in the future.`,
        ],
      ];
      for (const [attempt, status, message] of cases) {
        const err = await failure(attempt());
        assert.equal(err.wireStatus, status);
        assert.equal(err.message, message);
        assert.equal(err.status, status === 413 ? 413 : 400);
      }
      assert.equal(await kv.get("p5", "v"), null);
      await kv.put("p5", "v", Buffer.alloc(kvLimits.maxValueBytes, 1), {
        metadata: JSON.stringify("m".repeat(1022)),
        expiration: now + 60,
      });
      const got = await kv.get("p5", "v");
      assert.equal(got?.value.length, kvLimits.maxValueBytes);
      assert.equal(got?.expiration, now + 60);
      await kv.delete("p5", "v");
    });

    it("reads a streamed value to the end and counts past the limit without keeping it", async () => {
      const chunks = (n: number, size: number) =>
        new ReadableStream<Uint8Array>({
          pull(c) {
            if (n-- > 0) c.enqueue(new Uint8Array(size).fill(65));
            else c.close();
          },
        });
      await kv.put("p6", "s", chunks(3, 4));
      assert.equal((await kv.get("p6", "s"))?.value.toString(), "AAAAAAAAAAAA");
      const err = await failure(kv.put("p6", "s2", chunks(26, 1024 * 1024)));
      assert.equal(err.message, "Value length of 27262976 exceeds limit of 26214400.");
      assert.equal(await kv.get("p6", "s2"), null);
    });

    it("expired pairs are never returned, and a sweep deletes them", async () => {
      await kv.put("p7", "short", text("s"), { expirationTtl: 60 });
      await kv.put("p7", "long", text("l"), { expirationTtl: 3600 });
      await kv.put("p7", "forever", text("f"));
      const start = clock.now();
      clock.advance(59_999);
      assert.equal((await kv.get("p7", "short"))?.value.toString(), "s");
      setTime(start + 60_000); // the second the expiration names
      assert.equal(await kv.get("p7", "short"), null);
      assert.deepEqual(
        (await kv.list("p7")).keys.map((k) => k.name),
        ["forever", "long"],
      );
      const bulk = await kv.getBulk("p7", ["short", "long"], {});
      assert.deepEqual(
        [...bulk],
        [
          ["short", null],
          ["long", "l"],
        ],
      );
      const rows = () =>
        db
          .selectFrom("kv")
          .select("key")
          .where("project_id", "=", "p7")
          .execute()
          .then((r) => r.map((x) => x.key.toString()).sort());
      assert.deepEqual(await rows(), ["forever", "long", "short"]);
      assert.equal(await kv.sweepExpired(), 1);
      assert.deepEqual(await rows(), ["forever", "long"]);
      setTime(start + 3_600_000);
      assert.equal(await kv.sweepExpired(), 1);
      assert.deepEqual(await rows(), ["forever"]);
      setTime(start);
    });

    it("sweeps many expired pairs in batches", async () => {
      const count = kvLimits.sweepBatchRows * 2 + 5;
      for (let i = 0; i < count; i++) {
        await kv.put("p8", `e${i}`, text("x"), { expirationTtl: 60 });
      }
      await kv.put("p8", "stay", text("x"));
      clock.advance(61_000);
      assert.equal(await kv.sweepExpired(), count);
      assert.deepEqual((await kv.list("p8")).keys, [{ name: "stay" }]);
      clock.advance(-61_000);
    });

    it("lists in UTF-8 byte order with prefixes and cursors", async () => {
      const names = ["a", "B", "é", "\uff61", "😀", "z", "a/b", "a0", "", "~"];
      for (const n of names)
        await kv.put("p9", "L/" + n, text(n), n === "a" ? { metadata: "[1]" } : {});
      await kv.put("p9", "M", text("outside"));
      await kv.put("p9", "K", text("outside"));
      const byBytes = names
        .map((n) => "L/" + n)
        .sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      assert.notDeepEqual(byBytes, [...byBytes].sort(), "JS order would differ");
      const all = await kv.list("p9", { prefix: "L/" });
      assert.deepEqual(
        all.keys.map((k) => k.name),
        byBytes,
      );
      assert.equal(all.list_complete, true);
      assert.equal("cursor" in all, false);
      assert.deepEqual(all.keys.find((k) => k.name === "L/a")?.metadata, [1]);

      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await kv.list("p9", { prefix: "L/", limit: 4, cursor });
        seen.push(...page.keys.map((k) => k.name));
        cursor = page.cursor;
        pages++;
        assert.equal(page.list_complete, cursor === undefined);
      } while (cursor);
      assert.equal(pages, 3);
      assert.deepEqual(seen, byBytes);
      // Exactly `limit` keys left: complete, no cursor (one row past the page is looked at).
      const exact = await kv.list("p9", { prefix: "L/", limit: names.length });
      assert.equal(exact.list_complete, true);
      assert.equal(exact.cursor, undefined);
      // The cursor is the last key, base64 (as Miniflare makes it).
      const first = await kv.list("p9", { prefix: "L/", limit: 1 });
      assert.equal(first.cursor, Buffer.from(byBytes[0]).toString("base64"));
      assert.deepEqual(
        (await kv.list("p9", { prefix: "L/a" })).keys.map((k) => k.name),
        ["L/a", "L/a/b", "L/a0"],
      );
    });

    it("keeps keys, values and metadata with U+0000 in them as they were given", async () => {
      const key = "n/a\u0000b";
      await kv.put("p14", key, text("v\u0000w"), { metadata: '{"s":"\\u0000"}' });
      const got = await kv.get("p14", key);
      assert.equal(got?.value.toString(), "v\u0000w");
      assert.deepEqual(JSON.parse(got!.metadata!), { s: "\u0000" });
      await kv.put("p14", "n/a", text("shorter"));
      assert.deepEqual(
        (await kv.list("p14")).keys.map((k) => k.name),
        ["n/a", key],
      );
      assert.equal(await kv.get("p14", "n/a\ufffdb"), null);
    });

    it("refuses list limits and prefixes past the limits", async () => {
      const over = await failure(kv.list("p9", { limit: 1001 }));
      assert.equal(
        over.message,
        "Invalid key_count_limit of 1001. Please specify an integer less than 1000.",
      );
      const zero = await failure(kv.list("p9", { limit: 0 }));
      assert.equal(
        zero.message,
        "Invalid key_count_limit of 0. Please specify an integer greater than 0.",
      );
      const prefix = await failure(kv.list("p9", { prefix: "p".repeat(513) }));
      assert.equal(prefix.wireStatus, 414);
      assert.equal((await kv.list("p9", { limit: 1000 })).list_complete, true);
    });

    it("reads several keys at once with Cloudflare's bulk rules", async () => {
      await kv.put("p10", "j", text('{"x":1}'), { metadata: '{"m":true}' });
      await kv.put("p10", "t", text("plain"));
      const asText = await kv.getBulk("p10", ["t", "j", "t", "none"], {});
      assert.deepEqual(
        [...asText],
        [
          ["t", "plain"],
          ["j", '{"x":1}'],
          ["none", null],
        ],
      );
      const asJson = await kv.getBulk("p10", ["j", "none"], { type: "json", withMetadata: true });
      assert.deepEqual(
        [...asJson],
        [
          ["j", { value: { x: 1 }, metadata: { m: true } }],
          ["none", null],
        ],
      );
      const messages: [() => Promise<unknown>, string][] = [
        [() => kv.getBulk("p10", ["t"], { type: "json" }), "non-json value"],
        [
          () => kv.getBulk("p10", ["t"], { type: "arrayBuffer" }),
          '"arrayBuffer" is not a valid type',
        ],
        [() => kv.getBulk("p10", [], {}), "You must request a minimum of 1 key"],
        [
          () => kv.getBulk("p10", Array(101).fill("t"), {}),
          "You can request a maximum of 100 keys",
        ],
        [() => kv.getBulk("p10", ["t", ""], {}), "Key names must not be empty"],
        [() => kv.getBulk("p10", ["t"], { cacheTtl: 29 }), "Cache TTL must be at least 30"],
      ];
      for (const [attempt, message] of messages) {
        assert.ok((await failure(attempt())).message.includes(message), message);
      }
    });

    it("lists o:B, o:Z, o:a, o:é in byte order, with 25 MiB values read back whole", async () => {
      // Every byte value, in an order of its own for each key.
      const valueOf = (i: number) =>
        Buffer.alloc(
          kvLimits.maxValueBytes,
          Buffer.from(Array.from({ length: 256 }, (_, b) => (b + i * 37) % 256)),
        );
      const order = ["o:B", "o:Z", "o:a", "o:é"];
      const names = ["o:é", "o:a", "o:Z", "o:B"];
      for (const [i, name] of names.entries())
        await kv.put("p11", name, valueOf(i), { metadata: JSON.stringify({ i }) });
      const all = await kv.list("p11", { prefix: "o:" });
      assert.deepEqual(
        all.keys.map((k) => k.name),
        order,
      );
      assert.deepEqual(
        all.keys.map((k) => k.metadata),
        order.map((name) => ({ i: names.indexOf(name) })),
      );
      const paged: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await kv.list("p11", { prefix: "o:", limit: 1, cursor });
        paged.push(...page.keys.map((k) => k.name));
        cursor = page.cursor;
      } while (cursor);
      assert.deepEqual(paged, order);
      for (const [i, name] of names.entries()) {
        const got = await kv.get("p11", name);
        assert.equal(got?.value.length, kvLimits.maxValueBytes, name);
        assert.ok(got?.value.equals(valueOf(i)), `${name} comes back byte for byte`);
      }
      const bulk = await kv.getBulk("p11", ["o:a"], {});
      assert.equal(bulk.get("o:a"), valueOf(1).toString("utf8"));
      // A 25 MiB value replaced by another.
      await kv.put("p11", "o:a", valueOf(9));
      assert.ok((await kv.get("p11", "o:a"))?.value.equals(valueOf(9)));
      for (const name of names) await kv.delete("p11", name);
      assert.deepEqual(await storedKeys("p11"), []);
    });

    it("a sweep leaves a pair that a put renews while the sweep runs", async () => {
      await kv.put("p13", "renewed", text("old"), { expirationTtl: 60 });
      clock.advance(60_000);
      let sweep!: Promise<number>;
      try {
        // A put still in its transaction when the sweep comes: its row is expired as committed.
        await db.transaction().execute(async (trx) => {
          await trx
            .updateTable("kv")
            .set({ value: text("new"), expiration: null })
            .where("project_id", "=", "p13")
            .where("key", "=", text("renewed"))
            .execute();
          let swept = false;
          sweep = kv.sweepExpired().finally(() => (swept = true));
          // SQLite runs one statement at a time, so the sweep runs after the commit. On
          // PostgreSQL the put commits once the sweep is over or waiting for the put's row
          // (asked on another connection: a transaction sees pg_stat_activity as it began).
          const waits = async () =>
            (
              await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
                where datname = current_database() and wait_event_type = 'Lock'`.execute(db)
            ).rows[0].n > 0;
          const deadline = Date.now() + 10_000;
          while (dialect.kind === "postgres" && !swept && !(await waits())) {
            assert.ok(Date.now() < deadline, "the sweep neither ended nor waited");
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        });
        await sweep;
      } finally {
        clock.advance(-60_000);
      }
      const got = await kv.get("p13", "renewed");
      assert.deepEqual([got?.value.toString(), got?.expiration], ["new", null]);
      await kv.delete("p13", "renewed");
    });

    it("the background sweeper deletes expired pairs by itself", async () => {
      await kv.put("p12", "old", text("x"), { expirationTtl: 60 });
      await kv.put("p12", "kept", text("x"));
      clock.advance(60_000);
      const lines: string[] = [];
      kv.startSweeping(5, (line) => lines.push(line));
      try {
        await eventually(async () => ((await storedKeys("p12")).length === 1 ? true : undefined));
      } finally {
        await kv.stop();
        clock.advance(-60_000);
      }
      assert.deepEqual(await storedKeys("p12"), ["kept"]);
      assert.deepEqual(lines, []);
    });
  });
}
