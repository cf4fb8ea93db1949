import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { defaults, loadConfig } from "../../src/host/config.js";
import { ManualClock } from "../../src/store/clock.js";
import type { Store } from "../../src/store/db.js";
import { SecretBox } from "../../src/secrets/crypto.js";
import { webhookStore, type DeliveryRow } from "../../src/webhooks/store.js";
import {
  DeliverySender,
  DeliveryWorker,
  secretContext,
  sign,
} from "../../src/webhooks/deliveries.js";
import { dialects, dropTestDatabases, type DialectStore } from "../helpers/postgres.js";
import { startReceiver } from "../helpers/receiver.js";

let db: Store;
const box = new SecretBox(crypto.randomBytes(32));
const projectId = crypto.randomUUID();
const t0 = Date.UTC(2030, 0, 1);

after(dropTestDatabases);

async function webhook(url: string, secret = "secret-key"): Promise<string> {
  const id = crypto.randomUUID();
  await webhookStore.insert(db, {
    id,
    project_id: projectId,
    url,
    function_id: null,
    events: JSON.stringify(["whatsapp.message.received"]),
    secret_sealed: box.seal(secret, secretContext(id)),
    headers: "{}",
    active: 1,
    created_at: "x",
    updated_at: "x",
  });
  return id;
}

async function queue(
  webhookId: string,
  conversationId: string | null,
  at: number,
): Promise<string> {
  const id = crypto.randomUUID();
  const row = {
    id,
    project_id: projectId,
    webhook_id: webhookId,
    event: "whatsapp.message.received",
    payload: "{}",
    conversation_id: conversationId,
  };
  await webhookStore.insertDeliveries(db, [row], "x", at);
  return id;
}

const claim = (now: number, owner = "a") =>
  webhookStore
    .claim(db, { owner, now, leaseMs: 30_000, holdBackMs: 30_000, limit: 50 })
    .then((rows) => rows.map((r) => r.id));

/** A failed attempt: the delivery waits for its retry at `retryAt`. */
const fail = (id: string, owner: string, retryAt: number) =>
  webhookStore.finish(db, id, owner, { attempts: 1, next_attempt_at: retryAt, last_error: "down" });

describe("delivery configuration", () => {
  it("retries after 10, 40 and 90 s by default; WORKERBASE_WEBHOOK_RETRY_DELAYS changes that", () => {
    assert.deepEqual(defaults.webhookRetryDelaysMs, [10_000, 40_000, 90_000]);
    assert.equal(defaults.webhookAttemptTimeoutMs, 10_000);
    assert.equal(defaults.webhookHoldBackMs, 30_000);
    assert.deepEqual(loadConfig([], {}).webhookRetryDelaysMs, [10_000, 40_000, 90_000]);
    assert.deepEqual(
      loadConfig([], { WORKERBASE_WEBHOOK_RETRY_DELAYS: "1, 2,3" }).webhookRetryDelaysMs,
      [1000, 2000, 3000],
    );
    assert.deepEqual(
      loadConfig([], { WORKERBASE_WEBHOOK_RETRY_DELAYS: "0.5" }).webhookRetryDelaysMs,
      [500],
    );
    for (const bad of ["x", "1,,2", "-1"])
      assert.throws(() => loadConfig([], { WORKERBASE_WEBHOOK_RETRY_DELAYS: bad }), /RETRY_DELAYS/);
  });
});

for (const dialect of dialects) {
  describe(`deliveries on ${dialect.kind}`, () => {
    let dir: string;
    let store: DialectStore;
    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-hooks-"));
      store = await dialect.open(dir);
      db = store.db;
      await db
        .insertInto("projects")
        .values({ id: projectId, name: "p", created_at: "x" })
        .execute();
    });
    after(async () => {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    describe("claiming deliveries", () => {
      it("one at a time per subscription and conversation, others in parallel", async () => {
        const hook = await webhook("http://127.0.0.1:9/a");
        const a1 = await queue(hook, "conv-a", t0);
        const a2 = await queue(hook, "conv-a", t0);
        const b1 = await queue(hook, "conv-b", t0);
        const n1 = await queue(hook, null, t0);
        assert.deepEqual(await claim(t0), [a1, b1, n1]);
        assert.deepEqual(await claim(t0 + 1), [], "a2 waits while a1 is in flight");
        for (const id of [a1, b1, n1]) await fail(id, "a", t0 + 10_000);
        assert.deepEqual(await claim(t0 + 2), [], "a2 is held back behind a1's retry");
        assert.deepEqual(await claim(t0 + 10_000), [a1, b1, n1]);
        // Another host may take a delivery whose lease ran out (its holder died); a2 still waits.
        assert.deepEqual(await claim(t0 + 40_001, "b"), [a1, b1, n1]);
        for (const id of [a1, b1, n1]) await fail(id, "b", t0 + 100_000);
        // More than 30 s after it was queued, a2 goes ahead of a1's retry.
        assert.deepEqual(await claim(t0 + 40_002), [a2]);
      });

      it("a later event is held back at most 30 s behind one waiting for its retry", async () => {
        const hook = await webhook("http://127.0.0.1:9/b");
        const first = await queue(hook, "conv", t0);
        assert.deepEqual(await claim(t0), [first]);
        await fail(first, "a", t0 + 10_000);
        const second = await queue(hook, "conv", t0 + 5_000);
        assert.deepEqual(await claim(t0 + 6_000), []);
        assert.deepEqual(await claim(t0 + 10_000), [first], "the retry goes first");
        assert.deepEqual(await claim(t0 + 10_001), [], "and the next waits while it is in flight");
        await fail(first, "a", t0 + 50_000);
        assert.deepEqual(await claim(t0 + 34_000), []);
        assert.deepEqual(await claim(t0 + 35_001), [second]);
      });

      it("cancelled deliveries are never claimed", async () => {
        const hook = await webhook("http://127.0.0.1:9/c");
        await queue(hook, "conv", t0);
        await webhookStore.cancelPending(db, hook, "x");
        assert.deepEqual(await claim(t0), []);
      });
    });

    describe("the delivery worker", () => {
      const sender = new DeliverySender({
        // Only URL subscriptions here: functions and the invoker are never reached.
        functions: undefined as never,
        invoker: undefined as never,
        box,
        publicUrl: "http://127.0.0.1",
        allowPrivateNetwork: true,
        attemptTimeoutMs: defaults.webhookAttemptTimeoutMs,
      });
      const worker = (hostId: string, clock: ManualClock) =>
        new DeliveryWorker(db, sender, {
          hostId,
          clock,
          pollMs: 50,
          maxInFlight: 4,
          leaseMs: defaults.webhookLeaseMs,
          holdBackMs: defaults.webhookHoldBackMs,
          retryDelaysMs: defaults.webhookRetryDelaysMs,
          log: () => {},
        });
      const row = async (id: string, until: (r: DeliveryRow) => boolean) => {
        for (let i = 0; i < 250; i++) {
          const r = await webhookStore.deliveryById(db, projectId, id);
          if (r && until(r)) return r;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.fail(`delivery ${id} never got there`);
      };

      it("signs each attempt, retries 10 s after a failure by default, with the same key", async () => {
        const receiver = await startReceiver();
        receiver.answer((_, seen) => (seen === 1 ? 500 : 200));
        const clock = new ManualClock();
        const hook = await webhook(`${receiver.url}/w`, "worker-secret");
        const id = await queue(hook, null, clock.now());
        const w = worker("host-a", clock);
        w.start();
        try {
          const [got] = await receiver.waitFor("/w", 1);
          assert.equal(got.headers["x-webhook-signature"], sign("worker-secret", got.body));
          assert.equal(got.headers["x-idempotency-key"], id);
          const failed = await row(id, (r) => r.attempts === 1);
          assert.equal(failed.status, "pending");
          assert.equal(failed.last_status_code, 500);
          assert.equal(failed.lease_owner, null);
          assert.equal(failed.next_attempt_at, clock.now() + 10_000);
          clock.advance(9_999);
          w.kick();
          clock.advance(1);
          w.kick();
          const [, retry] = await receiver.waitFor("/w", 2);
          assert.equal(retry.headers["x-idempotency-key"], id);
          assert.equal((await row(id, (r) => r.status === "delivered")).attempts, 2);
        } finally {
          await w.stop(Date.now() + 1000);
          await receiver.close();
        }
      });

      it("a delivery whose host died is attempted by another host once its lease ran out", async () => {
        const receiver = await startReceiver();
        const clock = new ManualClock();
        const hook = await webhook(`${receiver.url}/died`);
        const id = await queue(hook, null, clock.now());
        const held = await webhookStore.claim(db, {
          owner: "host-dead",
          now: clock.now(),
          leaseMs: defaults.webhookLeaseMs,
          holdBackMs: defaults.webhookHoldBackMs,
          limit: 10,
        });
        assert.deepEqual(
          held.map((d) => d.id),
          [id],
        );
        const w = worker("host-b", clock);
        w.start();
        try {
          clock.advance(defaults.webhookLeaseMs - 1);
          w.kick();
          await new Promise((resolve) => setTimeout(resolve, 100));
          assert.equal(receiver.at("/died").length, 0, "not while the lease lasts");
          clock.advance(1);
          w.kick();
          const [got] = await receiver.waitFor("/died", 1);
          assert.equal(got.headers["x-idempotency-key"], id);
          const done = await row(id, (r) => r.status === "delivered");
          assert.equal(done.attempts, 1);
        } finally {
          await w.stop(Date.now() + 1000);
          await receiver.close();
        }
      });

      it("a restarted host takes back the deliveries it held at once", async () => {
        const receiver = await startReceiver();
        const clock = new ManualClock();
        const hook = await webhook(`${receiver.url}/restart`);
        const id = await queue(hook, null, clock.now());
        await webhookStore.claim(db, {
          owner: "host-c",
          now: clock.now(),
          leaseMs: defaults.webhookLeaseMs,
          holdBackMs: defaults.webhookHoldBackMs,
          limit: 10,
        });
        const w = worker("host-c", clock);
        w.start();
        try {
          await receiver.waitFor("/restart", 1);
          assert.equal((await row(id, (r) => r.status === "delivered")).attempts, 1);
        } finally {
          await w.stop(Date.now() + 1000);
          await receiver.close();
        }
      });
    });
  });
}
