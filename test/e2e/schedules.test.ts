// Schedules (CONTRACT 8.2) through the real `workerbase serve`: validation, what a deploy
// accepts, forged cron headers, and one tick in real time with two hosts on one PostgreSQL
// database (the other tick tests move a ManualClock instead: test/schedules/ticks.test.ts).
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { after, before, describe, it } from "node:test";
import { deployFunction, startServer, waitForDeploy, type TestServer } from "../helpers/server.js";
import { createTestDatabase, dropTestDatabases } from "../helpers/postgres.js";

let server: TestServer;
const others: TestServer[] = [];

before(async () => {
  server = await startServer();
});
after(async () => {
  await Promise.all([server, ...others].map((s) => s?.stop()));
  await dropTestDatabases();
});

const echo = `async function handler(request) {
  return Response.json({ headers: Object.fromEntries(request.headers) });
}`;

async function json(res: Response) {
  return { status: res.status, body: (await res.json()) as any };
}

describe("schedules", () => {
  it("are validated, naming the entry and the field, and a refused change changes nothing", async () => {
    const fn = await deployFunction(server, {
      name: "validated",
      code: echo,
      schedules: [{ cron: "0 9 * * MON-FRI", timezone: "Europe/Berlin", body: { a: 1 } }],
    });
    assert.equal(fn.schedules.length, 1);
    assert.deepEqual(
      { ...fn.schedules[0], next_run_at: undefined },
      {
        cron: "0 9 * * MON-FRI",
        timezone: "Europe/Berlin",
        body: { a: 1 },
        next_run_at: undefined,
      },
    );
    const next = new Date(fn.schedules[0].next_run_at);
    assert.ok(next.getTime() > Date.now());
    const local = new Intl.DateTimeFormat("en-GB", {
      timeZone: "Europe/Berlin",
      hour: "2-digit",
      minute: "2-digit",
      weekday: "short",
    }).format(next);
    assert.match(local, /^(Mon|Tue|Wed|Thu|Fri) 09:00$/);

    const bad: [unknown, string, RegExp][] = [
      [[{ cron: "61 * * * *" }], "schedules.0.cron", /minute/],
      [[{ cron: "* * * *" }], "schedules.0.cron", /5 fields/],
      [[{ cron: "0 0 0 * * *" }], "schedules.0.cron", /5 fields/],
      [[{ cron: "@daily" }], "schedules.0.cron", /5 fields/],
      [[{ cron: "* * * * *" }, { cron: "* * * * FOO" }], "schedules.1.cron", /.+/],
      [[{ cron: "* * * * *", timezone: "Mars/Olympus" }], "schedules.0.timezone", /IANA/],
      [[{ cron: "* * * * *", extra: 1 }], "schedules.0.extra", /unknown field "extra"/],
      [[{ cron: 5 }], "schedules.0.cron", /.+/],
      [Array.from({ length: 11 }, () => ({ cron: "* * * * *" })), "schedules", /at most 10/],
      ["* * * * *", "schedules", /.+/],
    ];
    for (const [schedules, field, message] of bad) {
      const res = await json(
        await server.call("PATCH", `/functions/${fn.id}`, { function: { schedules } }),
      );
      assert.equal(res.status, 400, JSON.stringify(schedules));
      const detail = res.body.details.find((d: any) => d.field === field);
      assert.ok(detail, `${JSON.stringify(res.body)} names ${field}`);
      assert.match(detail.message, message);
      assert.match(res.body.error, new RegExp(`^Invalid ${field.replace(/\./g, "\\.")}`));
    }
    const unchanged = await json(await server.call("GET", `/functions/${fn.id}`));
    assert.equal(unchanged.body.data.schedules[0].cron, "0 9 * * MON-FRI");

    const created = await json(
      await server.call("POST", "/functions", {
        function: { name: "bad-create", code: echo, schedules: [{ cron: "nope" }] },
      }),
    );
    assert.equal(created.status, 400);
    const draft = await json(
      await server.call("POST", "/functions", {
        function: { name: "draft-scheduled", code: echo, schedules: [{ cron: "* * * * *" }] },
      }),
    );
    assert.equal(draft.status, 201);
    assert.equal(draft.body.data.schedules[0].next_run_at, null, "a draft does not run");
  });

  it("a deploy takes handler, scheduled or both, and refuses code with neither", async () => {
    const cases: [string, string | null][] = [
      [`async function scheduled(event, env) {}`, null],
      [
        `export async function scheduled(event, env) {}\nasync function handler() { return new Response("x"); }`,
        null,
      ],
      [`async function helper() {}`, "No top-level `handler` (or `scheduled`)"],
      [`const scheduled = 5;`, "`scheduled` is not a function"],
    ];
    for (const [code, error] of cases) {
      const created = await json(
        await server.call("POST", "/functions", {
          function: { name: `shape-${crypto.randomUUID().slice(0, 8)}`, code },
        }),
      );
      await server.call("POST", `/functions/${created.body.data.id}/deploy`);
      const fn = await waitForDeploy(server, created.body.data.id);
      if (error === null) assert.equal(fn.deploy_error, null, code);
      else assert.ok(fn.deploy_error?.includes(error), `${code}: ${fn.deploy_error}`);
    }
  });

  it("callers cannot send the cron headers: they are stripped before the function", async () => {
    const fn = await deployFunction(server, { name: "forged", code: echo });
    const res = await fetch(`${server.api}/functions/${fn.id}/invoke`, {
      method: "POST",
      headers: {
        "x-api-key": server.key,
        "x-workerbase-cron": "* * * * *",
        "x-workerbase-scheduled-time": "2020-01-01T00:00:00.000Z",
        "x-workerbase-tick": "1",
      },
      body: "{}",
    });
    assert.equal(res.status, 200);
    const { headers } = (await res.json()) as any;
    for (const name of Object.keys(headers)) assert.doesNotMatch(name, /^x-workerbase-/);
  });
});

describe("a real-time tick with two hosts on one PostgreSQL database", () => {
  it("a * * * * * schedule fires within 1 s of the minute, once, on one of the hosts", async () => {
    const database = await createTestDatabase();
    const env = {
      DATABASE_URL: database.url,
      WORKERBASE_MASTER_KEY: crypto.randomBytes(32).toString("base64"),
      WORKERBASE_API_KEY: "wb_tick_" + crypto.randomBytes(12).toString("hex"),
    };
    const [a, b] = await Promise.all([startServer({ env }), startServer({ env })]);
    others.push(a, b);
    const fn = await deployFunction(a, {
      name: "realtime",
      code: `async function scheduled(event) { console.log("tick", event.scheduledTime); }`,
      schedules: [{ cron: "* * * * *" }],
    });
    const due = Date.parse(fn.schedules[0].next_run_at);
    assert.equal(due % 60_000, 0);
    // Waits for the minute (at most 60 s) and a little more.
    const deadline = due + 15_000;
    let records: any[] = [];
    while (Date.now() < deadline) {
      records = (await json(await b.call("GET", `/functions/${fn.id}/invocations`))).body.data;
      if (records.length > 0 && Date.now() > due + 3000) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const ticks = records.filter(
      (r) => r.request_headers["x-workerbase-scheduled-time"] === new Date(due).toISOString(),
    );
    assert.equal(ticks.length, 1, JSON.stringify(records));
    const [tick] = ticks;
    assert.equal(tick.trigger, "cron");
    assert.equal(tick.status, "success");
    assert.equal(tick.logs[0].message, `tick ${due}`);
    const late = Date.parse(tick.created_at) - due;
    assert.ok(late >= 0 && late < 1000, `started ${late} ms after its time`);
  });
});
