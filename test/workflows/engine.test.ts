import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { ManualClock } from "../../src/store/clock.js";
import { openStore, type Store } from "../../src/store/db.js";
import { WorkflowEngine } from "../../src/workflows/engine.js";
import { StepRunner } from "../../src/workflows/steps.js";
import { workflowStore } from "../../src/workflows/store.js";
import { createTestDatabase, dialects, dropTestDatabases } from "../helpers/postgres.js";
import { startReceiver, type Receiver } from "../helpers/receiver.js";

after(dropTestDatabases);

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wb-engine-"));
const leaseMs = 20_000;

type NodeSpec = [id: string, type: string, config?: Record<string, unknown>];

/** Stores a definition (start → nodes in a line) and returns its version id. */
async function version(db: Store, nodes: NodeSpec[]): Promise<string> {
  const all: NodeSpec[] = [["start", "start"], ...nodes];
  const definition = {
    nodes: all.map(([id, node_type, config = {}]) => ({ id, data: { node_type, config } })),
    edges: all.slice(1).map(([id], i) => ({ source: all[i]![0], target: id, label: "next" })),
  };
  const id = crypto.randomUUID();
  await workflowStore.insertVersion(db, {
    id,
    workflow_id: "w",
    definition: JSON.stringify(definition),
    created_at: "x",
  });
  return id;
}

function engine(db: Store, hostId: string, clock: ManualClock, log: string[] = []) {
  const steps = new StepRunner({
    clock,
    // Only start, set_variable, webhook, wait and end nodes here: functions are never reached.
    functions: undefined as never,
    invoker: undefined as never,
    publicUrl: "http://127.0.0.1",
    allowPrivateNetwork: true,
    webhookTimeoutMs: 10_000,
    log: (line) => log.push(line),
  });
  return new WorkflowEngine(db, steps, {
    hostId,
    clock,
    leaseMs,
    sweepMs: 20,
    maxVarsBytes: 1024 * 1024,
    log: (line) => log.push(line),
  });
}

const begin = (e: WorkflowEngine, versionId: string) =>
  e.begin({
    projectId: "p",
    workflowId: "w",
    workflowName: "w",
    versionId,
    vars: {},
    context: {},
    metadata: {},
    triggerType: "api_call",
  });

/** An execution stored as a host left it: running at `step`, held by `owner` until `dueAt`. */
async function abandoned(
  db: Store,
  versionId: string,
  step: string,
  owner: string,
  dueAt: number,
): Promise<string> {
  const id = crypto.randomUUID();
  await workflowStore.insertExecution(db, {
    id,
    project_id: "p",
    workflow_id: "w",
    version_id: versionId,
    workflow_name: "w",
    status: "running",
    vars: "{}",
    context: "{}",
    system: JSON.stringify({ workflow_id: "w", workflow_execution_id: id }),
    metadata: "{}",
    current_step_id: step,
    step_entries: JSON.stringify({ start: 1, [step]: 1 }),
    lease_owner: owner,
    due_at: dueAt,
    created_at: "x",
    updated_at: "x",
  });
  return id;
}

async function eventually<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`${what} never happened`);
}

const settled = (db: Store, id: string, status: string) =>
  eventually(async () => {
    const row = await workflowStore.execution(db, id);
    return row?.status === status ? row : undefined;
  }, `execution ${id} reaching ${status}`);

/** Resolves after a few of the engine's polls: long enough for it to act, if it would. */
const polls = () => new Promise((r) => setTimeout(r, 150));

for (const dialect of dialects) {
  describe(`the workflow engine on ${dialect.kind}`, () => {
    it("begin runs a new execution at once on this host", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      const clock = new ManualClock();
      const e = engine(db, "host-a", clock);
      try {
        const v = await version(db, [
          ["set", "set_variable", { variable: "x", value: 1 }],
          ["done", "end"],
        ]);
        const state = await begin(e, v);
        const row = await settled(db, state.id, "ended");
        assert.deepEqual(JSON.parse(row.vars), { x: 1 });
        assert.equal(row.lease_owner, null);
        assert.equal(row.created_at, new Date(clock.now()).toISOString());
      } finally {
        await e.stop(Date.now() + 1000);
        await store.close();
      }
    });

    it("a wait timeout fires when the clock passes it, through the claim loop", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      const clock = new ManualClock();
      const e = engine(db, "host-a", clock);
      try {
        await e.start();
        const v = await version(db, [
          ["ask", "wait_for_response", { timeout_minutes: 1 }],
          ["done", "end"],
        ]);
        const state = await begin(e, v);
        const waiting = await settled(db, state.id, "waiting");
        assert.equal(waiting.due_at, clock.now() + 60_000);
        assert.equal(waiting.lease_owner, null);
        clock.advance(59_999);
        await polls();
        assert.equal((await workflowStore.execution(db, state.id))!.status, "waiting");
        clock.advance(1);
        const ended = await settled(db, state.id, "ended");
        assert.deepEqual(JSON.parse(ended.system).last_resume, { reason: "timeout" });
      } finally {
        await e.stop(Date.now() + 1000);
        await store.close();
      }
    });

    it("another host takes over an execution whose host died once its lease ran out", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      const clock = new ManualClock();
      const e = engine(db, "host-b", clock);
      try {
        const v = await version(db, [
          ["set", "set_variable", { variable: "x", value: "after" }],
          ["done", "end"],
        ]);
        const id = await abandoned(db, v, "set", "host-dead", clock.now() + leaseMs);
        await e.start();
        await polls();
        const held = (await workflowStore.execution(db, id))!;
        assert.equal(held.status, "running");
        assert.equal(held.lease_owner, "host-dead", "not while its lease lasts");
        clock.advance(leaseMs);
        const row = await settled(db, id, "ended");
        assert.deepEqual(JSON.parse(row.vars), { x: "after" });
      } finally {
        await e.stop(Date.now() + 1000);
        await store.close();
      }
    });

    it("a restarted host takes back its own running executions at once", async () => {
      const store = await dialect.open(tmp());
      const db = store.db;
      const clock = new ManualClock();
      const e = engine(db, "host-a", clock);
      try {
        const v = await version(db, [["done", "end"]]);
        const mine = await abandoned(db, v, "done", "host-a", clock.now() + leaseMs);
        const theirs = await abandoned(db, v, "done", "host-b", clock.now() + leaseMs);
        await e.start();
        await settled(db, mine, "ended");
        await polls();
        assert.equal((await workflowStore.execution(db, theirs))!.lease_owner, "host-b");
      } finally {
        await e.stop(Date.now() + 1000);
        await store.close();
      }
    });

    it("stop hands a step still running back; the next host runs it again, same key", async () => {
      const receiver = await startReceiver();
      receiver.answer((_, seen) => (seen === 1 ? "hang" : 200));
      const store = await dialect.open(tmp());
      const db = store.db;
      const clock = new ManualClock();
      const a = engine(db, "host-a", clock);
      const b = engine(db, "host-b", clock);
      try {
        const v = await version(db, [
          ["call", "webhook", { url: `${receiver.url}/call` }],
          ["done", "end"],
        ]);
        await a.start();
        const state = await begin(a, v);
        await receiver.waitFor("/call", 1);
        await a.stop(Date.now() + 50);
        const handed = (await workflowStore.execution(db, state.id))!;
        assert.equal(handed.status, "running");
        assert.equal(handed.lease_owner, null);
        assert.equal(handed.current_step_id, "call");
        await b.start();
        await receiver.waitFor("/call", 2);
        await settled(db, state.id, "ended");
        assert.equal(receiver.at("/call").length, 2);
      } finally {
        await a.stop(Date.now());
        await b.stop(Date.now() + 1000);
        await store.close();
        await receiver.close();
      }
    });
  });
}

describe("workflow engines sharing a store", () => {
  async function twoHosts(kind: string): Promise<{ stores: Store[]; close: () => Promise<void> }> {
    if (kind === "sqlite") {
      const dir = tmp();
      const stores = [await openStore(dir), await openStore(dir)];
      return {
        stores,
        close: async () => void (await Promise.all(stores.map((s) => s.destroy()))),
      };
    }
    const database = await createTestDatabase();
    const stores = [
      await openStore(tmp(), { databaseUrl: database.url }),
      await openStore(tmp(), { databaseUrl: database.url }),
    ];
    return {
      stores,
      close: async () => {
        await Promise.all(stores.map((s) => s.destroy()));
        await database.drop();
      },
    };
  }

  for (const { kind } of dialects) {
    it(`${kind}: two hosts split abandoned executions; none runs a step twice`, async () => {
      const receiver: Receiver = await startReceiver();
      const { stores, close } = await twoHosts(kind);
      const clock = new ManualClock();
      const hosts = stores.map((db, i) => engine(db, `host-${i}`, clock));
      try {
        const db = stores[0]!;
        const v = await version(db, [
          ["call", "webhook", { url: `${receiver.url}/{{system.workflow_execution_id}}` }],
          ["done", "end"],
        ]);
        const ids: string[] = [];
        for (let i = 0; i < 40; i++)
          ids.push(await abandoned(db, v, "call", "host-dead", clock.now() - 1));
        await Promise.all(hosts.map((h) => h.start()));
        for (const id of ids) await settled(db, id, "ended");
        const calls = receiver.received.map((r) => r.path.slice(1)).sort();
        assert.deepEqual(calls, [...ids].sort(), "each step ran exactly once");
      } finally {
        await Promise.all(hosts.map((h) => h.stop(Date.now() + 1000)));
        await close();
        await receiver.close();
      }
    });
  }
});
