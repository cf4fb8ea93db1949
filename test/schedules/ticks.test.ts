// Schedule ticks (CONTRACT 8.2) on real hosts booted in this process with a ManualClock: the
// test moves time a minute at a time instead of waiting for it. Everything else is real: the
// HTTP API, workerd, the store (SQLite, and PostgreSQL for two hosts sharing one database).
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import SQLite from "better-sqlite3";
import { startHost, type RunningHost } from "../../src/host/boot.js";
import { loadConfig } from "../../src/host/config.js";
import { ManualClock } from "../../src/store/clock.js";
import { createTestDatabase, dropTestDatabases } from "../helpers/postgres.js";

const minute = 60_000;
const hosts: RunningHost[] = [];
const dirs: string[] = [];

after(async () => {
  await Promise.all(hosts.map((h) => h.shutdown()));
  await dropTestDatabases();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

interface Host {
  url: string;
  key: string;
  dir: string;
  call: (method: string, route: string, body?: unknown) => Promise<any>;
}

async function boot(clock: ManualClock, env: Record<string, string>): Promise<Host> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-ticks-"));
  dirs.push(dir);
  const config = loadConfig(["--port", "0", "--data", dir], {
    WORKERBASE_RUNTIME_PROCESSES: "1",
    ...env,
  });
  const host = await startHost(config, () => {}, { clock });
  hosts.push(host);
  const key = env.WORKERBASE_API_KEY;
  return {
    url: host.url,
    key,
    dir,
    call: async (method, route, body) => {
      const res = await fetch(`${host.url}/platform/v1${route}`, {
        method,
        headers: { "x-api-key": key, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
  };
}

function keys() {
  return {
    WORKERBASE_API_KEY: "wb_ticks_" + crypto.randomBytes(12).toString("hex"),
    WORKERBASE_MASTER_KEY: crypto.randomBytes(32).toString("base64"),
  };
}

async function deployed(host: Host, fn: Record<string, unknown>) {
  const created = await host.call("POST", "/functions", { function: fn });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.data.id;
  assert.equal((await host.call("POST", `/functions/${id}/deploy`)).status, 202);
  for (;;) {
    const got = await host.call("GET", `/functions/${id}`);
    if (got.body.data.status !== "deploying") {
      assert.equal(got.body.data.deploy_error, null);
      return got.body.data;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Cron records of a function, oldest first, once there are `count` (or after `waitMs`). */
async function cronRecords(host: Host, id: string, count: number, waitMs = 10_000) {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const got = await host.call("GET", `/functions/${id}/invocations?limit=100`);
    const records = got.body.data.filter((r: any) => r.trigger === "cron").reverse();
    if (records.length >= count || Date.now() > deadline) return records;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A moment well inside a minute, so one advance of a minute crosses exactly one tick. */
function midMinute(): ManualClock {
  return new ManualClock(Math.floor(Date.now() / minute) * minute + 20_000);
}

/** Every booted host has read every schedule (a change reaches them by itself, soon). */
const settle = () => Promise.all(hosts.map((h) => h.reloadSchedules()));

const tickTimes = (records: any[]) =>
  records.map((r: any) => r.request_headers["x-workerbase-scheduled-time"]);

describe("schedule ticks on one host", () => {
  const clock = midMinute();
  let host: Host;

  before(async () => {
    host = await boot(clock, keys());
  });

  it("a * * * * * schedule runs handler once a minute with the body and the cron headers", async () => {
    const fn = await deployed(host, {
      name: "every-minute",
      code: `async function handler(request) {
        console.log("tick", request.headers.get("x-workerbase-cron"));
        return Response.json({
          method: request.method,
          body: await request.json(),
          cron: request.headers.get("x-workerbase-cron"),
          at: request.headers.get("x-workerbase-scheduled-time"),
        });
      }`,
      schedules: [{ cron: "* * * * *", body: { job: "sweep" } }],
    });
    const firstTick = Math.ceil(clock.now() / minute) * minute;
    assert.equal(fn.schedules[0].next_run_at, new Date(firstTick).toISOString());
    assert.equal(fn.schedules[0].timezone, "UTC");

    await settle(); // the scheduler has read the new schedule
    assert.deepEqual(await cronRecords(host, fn.id, 0), [], "nothing runs before its time");
    for (let i = 0; i < 3; i++) clock.advance(minute);
    const records = await cronRecords(host, fn.id, 3);
    assert.deepEqual(tickTimes(records), [
      new Date(firstTick).toISOString(),
      new Date(firstTick + minute).toISOString(),
      new Date(firstTick + 2 * minute).toISOString(),
    ]);
    const answer = JSON.parse(records[0].response_body);
    assert.deepEqual(answer, {
      method: "POST",
      body: { job: "sweep" },
      cron: "* * * * *",
      at: new Date(firstTick).toISOString(),
    });
    assert.equal(records[0].status, "success");
    assert.equal(records[0].version, 1);
    assert.match(records[0].logs[0].message, /tick \* \* \* \* \*/);
  });

  it("scheduled(event, env) is called when the code defines it, with cron and scheduledTime in ms", async () => {
    const fn = await deployed(host, {
      name: "scheduled-only",
      code: `async function scheduled(event, env) {
        await env.KV.put("last", JSON.stringify({ cron: event.cron, at: event.scheduledTime, type: event.type }));
        console.log("scheduled ran");
      }`,
      schedules: [{ cron: "*/2 * * * *", timezone: "Europe/Berlin" }],
    });
    await settle();
    assert.equal((await cronRecords(host, fn.id, 0)).length, 0);
    // A minute at a time, as a clock moves (a jump past staleMs would skip the tick).
    clock.advance(minute);
    clock.advance(minute);
    const [record] = await cronRecords(host, fn.id, 1);
    assert.equal(record.status, "success");
    const at = Date.parse(record.request_headers["x-workerbase-scheduled-time"]);
    assert.equal(at % (2 * minute), 0);
    const kv = await fetch(`${host.url}/platform/v1/kv/values/last`, {
      headers: { "x-api-key": host.key },
    });
    assert.equal(kv.status, 200);
    assert.deepEqual(await kv.json(), { cron: "*/2 * * * *", at, type: "scheduled" });
    // An HTTP call to a function without handler: a 500 in a sentence.
    const res = await fetch(`${host.url}/platform/v1/functions/${fn.id}/invoke`, {
      headers: { "x-api-key": host.key },
    });
    assert.equal(res.status, 500);
    assert.match(((await res.json()) as any).error, /runs only on schedule/);
  });

  it("module syntax: the default export's scheduled(controller, env, ctx) runs on each tick", async () => {
    const fn = await deployed(host, {
      name: "module-scheduled",
      code: `export default {
        async fetch() { return new Response("http"); },
        async scheduled(controller, env, ctx) {
          ctx.waitUntil(Promise.resolve());
          await env.KV.put("module-tick", controller.cron + " " + controller.scheduledTime);
        },
      };`,
      schedules: [{ cron: "* * * * *" }],
    });
    await settle();
    clock.advance(minute);
    const [record] = await cronRecords(host, fn.id, 1);
    assert.equal(record.status, "success");
    const at = Date.parse(record.request_headers["x-workerbase-scheduled-time"]);
    const kv = await fetch(`${host.url}/platform/v1/kv/values/module-tick`, {
      headers: { "x-api-key": host.key },
    });
    assert.equal(await kv.text(), `* * * * * ${at}`);
    assert.equal(record.response_body, null, "scheduled's result is not an answer");
  });

  it("a failed run is recorded and not retried; a tick missed while the clock jumped is not replayed", async () => {
    const fn = await deployed(host, {
      name: "fails",
      code: `async function handler() { throw new Error("nope"); }`,
      schedules: [{ cron: "* * * * *" }],
    });
    await settle();
    clock.advance(minute);
    const [failed] = await cronRecords(host, fn.id, 1);
    assert.equal(failed.status, "failed");
    assert.match(failed.error_message, /nope/);
    // Ten minutes at once (a stalled host): those ticks are gone, not run late.
    clock.advance(10 * minute);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await cronRecords(host, fn.id, 2, 500)).length, 1);
    clock.advance(minute);
    const after = await cronRecords(host, fn.id, 2);
    assert.equal(after.length, 2);
    assert.ok(Date.parse(tickTimes(after)[1]) > clock.now() - 2 * minute);
  });

  it("a schedule changed by PATCH applies at once; an emptied list stops the ticks", async () => {
    const fn = await deployed(host, {
      name: "patched",
      code: `async function handler() { return new Response("ok"); }`,
    });
    const patched = await host.call("PATCH", `/functions/${fn.id}`, {
      function: { schedules: [{ cron: "* * * * *" }] },
    });
    assert.equal(patched.status, 200);
    assert.ok(patched.body.data.schedules[0].next_run_at);
    await settle(); // the scheduler reads the change
    clock.advance(minute);
    assert.equal((await cronRecords(host, fn.id, 1)).length, 1);
    await host.call("PATCH", `/functions/${fn.id}`, { function: { schedules: [] } });
    await settle();
    clock.advance(minute);
    assert.equal((await cronRecords(host, fn.id, 2, 800)).length, 1);
  });

  it("a held-back function skips its ticks", async () => {
    const fn = await deployed(host, {
      name: "held",
      code: `async function handler() { return new Response("ok"); }`,
      schedules: [{ cron: "* * * * *" }],
    });
    // Held as the strike counter would hold it, told to the host through the change log.
    const file = new SQLite(path.join(host.dir, "workerbase.db"));
    file.pragma("busy_timeout = 5000");
    file
      .prepare("insert into function_holds (function_id, held_until, reason) values (?, ?, ?)")
      .run(fn.id, clock.now() + 10 * minute, "hung");
    file
      .prepare("insert into changes (topic, key, at) values ('hold', ?, ?)")
      .run(fn.id, clock.now());
    file.close();
    await new Promise((r) => setTimeout(r, 600)); // the change log is read every 200 ms
    assert.ok((await host.call("GET", `/functions/${fn.id}`)).body.data.held_until);
    clock.advance(minute);
    assert.equal((await cronRecords(host, fn.id, 1, 800)).length, 0);
  });

  it("a workflow's cron trigger starts one execution per tick with trigger_type cron", async () => {
    const created = await host.call("POST", "/workflows", {
      workflow: {
        name: "nightly",
        definition: {
          nodes: [
            { id: "start", data: { node_type: "start", config: {} } },
            {
              id: "mark",
              data: {
                node_type: "set_variable",
                config: { variable: "at", value: "{{context.scheduled_time}}" },
              },
            },
          ],
          edges: [{ source: "start", target: "mark", label: "next" }],
        },
        triggers: [{ type: "cron", cron: "* * * * *" }],
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.data.id;
    await settle();
    clock.advance(minute);
    const deadline = Date.now() + 10_000;
    let executions: any[] = [];
    while (Date.now() < deadline) {
      executions = (await host.call("GET", `/workflows/${id}/executions`)).body.data;
      if (executions.length > 0 && executions[0].status === "ended") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(executions.length, 1);
    const execution = (await host.call("GET", `/workflow_executions/${executions[0].id}`)).body
      .data;
    assert.equal(execution.system.trigger_type, "cron");
    assert.equal(execution.vars.at, execution.context.scheduled_time);
    assert.equal(Date.parse(execution.context.scheduled_time) % minute, 0);
  });
});

describe("schedule ticks with two hosts on one PostgreSQL database", () => {
  it("each tick runs exactly once, whichever host claims it", async () => {
    const { url } = await createTestDatabase();
    const clock = midMinute();
    const env = { ...keys(), DATABASE_URL: url };
    const [a, b] = await Promise.all([boot(clock, env), boot(clock, env)]);
    const fns = [];
    for (let i = 0; i < 3; i++)
      fns.push(
        await deployed(i % 2 ? a : b, {
          name: `shared-${i}`,
          code: `async function handler() { return new Response("ok"); }`,
          schedules: [{ cron: "* * * * *" }, { cron: "*/2 * * * *" }],
        }),
      );
    await settle(); // both hosts have read every schedule
    const minutes = 4;
    for (let i = 0; i < minutes; i++) {
      clock.advance(minute);
      await new Promise((r) => setTimeout(r, 200));
    }
    const ticks = minutes + minutes / 2;
    for (const fn of fns) {
      const records = await cronRecords(a, fn.id, ticks);
      await new Promise((r) => setTimeout(r, 300)); // a duplicate would show up by now
      const again = await cronRecords(a, fn.id, ticks + 1, 300);
      assert.equal(again.length, ticks, JSON.stringify(tickTimes(again)));
      const pairs = again.map(
        (r: any) => `${r.request_headers["x-workerbase-cron"]} ${tickTimes([r])[0]}`,
      );
      assert.equal(new Set(pairs).size, ticks, "no tick ran twice");
      assert.equal(records.length, ticks);
    }
  });
});
