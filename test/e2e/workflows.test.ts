import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import {
  deployFunction,
  eventually,
  startServer,
  workerdPidsFor,
  type TestServer,
} from "../helpers/server.js";

// The documented style of a function node: reads vars and context, answers vars.
const greet = `async function handler(request) {
  const { execution_context } = await request.json();
  const { vars, context } = execution_context;
  return Response.json({
    vars: { greeting: "Hello " + vars.name, phone: context.phone_number, tier: vars.amount > 100 ? "gold" : "basic" },
  });
}`;

// The documented style of a decide node: answers next_edge.
const router = `async function handler(request) {
  const { execution_context, available_edges } = await request.json();
  const edge = execution_context.vars.tier === "gold" ? "vip" : "standard";
  return Response.json({ next_edge: available_edges.includes(edge) ? edge : "none" });
}`;

// Keeps everything it received in vars, keyed by step; as a decide node it picks the last edge.
const spy = `async function handler(request) {
  const body = await request.json();
  const step = body.flow_info.step_id;
  return Response.json({
    vars: {
      ["seen_" + step]: body,
      ["key_" + step]: request.headers.get("x-idempotency-key"),
      ["type_" + step]: request.headers.get("content-type"),
    },
    ...(body.available_edges ? { next_edge: body.available_edges[body.available_edges.length - 1] } : {}),
  });
}`;

// Counts rounds and collects each call's idempotency key.
const bump = `async function handler(request) {
  const { execution_context: { vars } } = await request.json();
  return Response.json({ vars: { round: (vars.round ?? 0) + 1, keys: [...(vars.keys ?? []), request.headers.get("x-idempotency-key")] } });
}`;
const loop = `async function handler(request) {
  const { execution_context: { vars } } = await request.json();
  return Response.json({ next_edge: vars.round < 2 ? "again" : "done" });
}`;

// Answers whatever vars.answer describes: the failure modes of functions and decide nodes.
const misbehave = `async function handler(request) {
  const { execution_context: { vars } } = await request.json();
  switch (vars.mode) {
    case "throw": throw new Error("kaput");
    case "status": return Response.json({ error: "busy upstream" }, { status: 502 });
    case "text": return new Response("just text");
    case "unknown": return Response.json({ next_edge: "nowhere" });
    case "missing": return Response.json({ vars: { x: 1 } });
    case "merge": return Response.json({ vars: { replaced: { fresh: true }, added: 1 } });
  }
  return Response.json({});
}`;

interface Hit {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let server: TestServer;
let upstream: http.Server;
let upstreamUrl: string;
const hits: Hit[] = [];
const fns: Record<string, any> = {};

type NodeSpec = [id: string, type: string, config?: Record<string, unknown>];
type EdgeSpec = [source: string, target: string, label?: string];

function definition(nodes: NodeSpec[], edges: EdgeSpec[]) {
  return {
    nodes: nodes.map(([id, node_type, config = {}]) => ({ id, data: { node_type, config } })),
    edges: edges.map(([source, target, label = "next"]) => ({ source, target, label })),
  };
}

async function createWorkflow(s: TestServer, name: string, nodes: NodeSpec[], edges: EdgeSpec[]) {
  const res = await s.call("POST", "/workflows", {
    workflow: { name, definition: definition(nodes, edges) },
  });
  const body = (await res.json()) as any;
  assert.equal(res.status, 201, JSON.stringify(body));
  return body.data;
}

async function start(s: TestServer, workflowId: string, vars: object = {}, context: object = {}) {
  const res = await s.call("POST", `/workflows/${workflowId}/executions`, {
    execution: { vars, context },
  });
  const body = (await res.json()) as any;
  assert.equal(res.status, 202, JSON.stringify(body));
  return body.data.id as string;
}

async function execution(s: TestServer, id: string) {
  return ((await (await s.call("GET", `/workflow_executions/${id}`)).json()) as any).data;
}

/** Polls until the execution leaves `running` (or reaches `status`). */
async function settled(s: TestServer, id: string, status?: string, timeoutMs = 10_000) {
  return eventually(async () => {
    const e = await execution(s, id);
    if (status ? e.status === status : e.status !== "running") return e;
    return undefined;
  }, timeoutMs);
}

/** Every event of an execution, oldest first, read through the paged listing. */
async function allEvents(s: TestServer, id: string) {
  const out: any[] = [];
  let after: string | null = null;
  do {
    const res = await s.call(
      "GET",
      `/workflow_executions/${id}/events?limit=7${after ? `&after=${after}` : ""}`,
    );
    const body = (await res.json()) as any;
    out.push(...body.data);
    after = body.meta.next_cursor;
  } while (after);
  return out.reverse();
}

before(async () => {
  upstream = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      hits.push({ method: req.method!, path: req.url!, headers: req.headers, body });
      if (req.url!.startsWith("/fail")) return res.writeHead(500).end("upstream broke");
      if (req.url!.startsWith("/text")) return res.end("plain answer");
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ ok: true, received: body ? JSON.parse(body) : null }));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  server = await startServer();
  const code = { greet, router, spy, bump, loop, misbehave };
  await Promise.all(
    Object.entries(code).map(async ([name, source]) => {
      fns[name] = await deployFunction(server, { name, code: source });
    }),
  );
});
after(async () => {
  await server.stop();
  upstream.close();
});

describe("workflow definitions", () => {
  const ok: NodeSpec[] = [
    ["start", "start"],
    ["work", "set_variable", { variable: "a", value: 1 }],
  ];

  async function refused(
    nodes: NodeSpec[],
    edges: EdgeSpec[],
    node: string | undefined,
    words: RegExp,
  ) {
    const res = await server.call("POST", "/workflows", {
      workflow: { name: "bad", definition: definition(nodes, edges) },
    });
    const body = (await res.json()) as any;
    assert.equal(res.status, 400, JSON.stringify(body));
    if (node) {
      assert.match(body.error, new RegExp(`node "${node}"`));
      assert.equal(body.details[0].node_id, node);
    }
    assert.match(body.error, words);
  }

  it("a definition that cannot run is refused at save time, naming the node", async () => {
    await refused([["work", "end"]], [], undefined, /start/);
    await refused([...ok, ["odd", "teleport"]], [], "odd", /unknown node_type "teleport"/);
    await refused(ok, [["start", "ghost"]], "start", /"ghost" is not a node/);
    await refused(
      [...ok, ["b", "end"]],
      [
        ["start", "work"],
        ["start", "b"],
      ],
      "start",
      /at most one/,
    );
    await refused(ok, [["start", "work", "yes"]], "start", /labelled "next"/);
    await refused(
      [...ok, ["work2", "set_variable", { varable: "x", value: 1 }]],
      [],
      "work2",
      /varable|variable/,
    );
    const decide = {
      decision_type: "function",
      function_id: fns.router.id,
      conditions: [{ label: "a" }, { label: "b" }],
    };
    await refused(
      [...ok, ["pick", "decide", decide]],
      [["pick", "work", "a"]],
      "pick",
      /no edge for its condition "b"/,
    );
    await refused(
      [...ok, ["pick", "decide", decide]],
      [
        ["pick", "work", "a"],
        ["pick", "start", "b"],
        ["pick", "work", "c"],
      ],
      "pick",
      /"c", which is not one of its conditions/,
    );
    await refused(
      [...ok, ["call", "function", { function_slug: "no-such-fn" }]],
      [],
      "call",
      /"no-such-fn", which does not exist/,
    );
    await refused(
      [...ok, ["call", "function", {}]],
      [],
      "call",
      /exactly one of function_id and function_slug/,
    );
    await refused(
      [...ok, ["stop", "end"]],
      [["stop", "work"]],
      "stop",
      /end node has no outgoing edges/,
    );
  });

  it("anything that becomes a header is refused at save unless a header can carry it", async () => {
    // A function or decide node's id is part of the X-Idempotency-Key header of its call.
    await refused(
      [...ok, ["grüßen", "function", { function_id: fns.spy.id }]],
      [],
      "grüßen",
      /X-Idempotency-Key header .*contains "ü", which an HTTP header cannot carry/,
    );
    const decide = {
      decision_type: "function",
      function_id: fns.router.id,
      conditions: [{ label: "a" }],
    };
    await refused(
      [...ok, ["pick\u0000", "decide", decide]],
      [["pick\u0000", "work", "a"]],
      "pick\u0000",
      /X-Idempotency-Key header .*a control character \(U\+0000\)/,
    );
    const hook = (headers: Record<string, string>): NodeSpec => [
      "hook",
      "webhook",
      { url: `${upstreamUrl}/hook`, headers },
    ];
    await refused([...ok, hook({ "X-Price": "price €5" })], [], "hook", /X-Price: contains "€"/);
    await refused(
      [...ok, hook({ "X-Note": "a\r\nb" })],
      [],
      "hook",
      /X-Note: contains a line break/,
    );
    await refused([...ok, hook({ "bad name": "x" })], [], "hook", /not a valid header name/);
    await refused(
      [...ok, hook({ "X-Workerbase-Probe": "1" })],
      [],
      "hook",
      /X-Workerbase-Probe: X-Workerbase-\* headers are Workerbase's own/,
    );
    // Ids that never become a header may be anything; templates are checked once rendered.
    await createWorkflow(
      server,
      "Headers OK",
      [
        ...ok,
        ["grüßen", "set_variable", { variable: "b", value: 2 }],
        hook({ "X-Who": "{{vars.who}}" }),
      ],
      [
        ["start", "work"],
        ["work", "grüßen"],
        ["grüßen", "hook"],
      ],
    );
  });

  it("workflows are created, listed, read by id or slug, updated, and deleted", async () => {
    const wf = await createWorkflow(server, "CRUD Flow", ok, [["start", "work"]]);
    assert.equal(wf.slug, "crud-flow");
    assert.deepEqual(wf.triggers, []);
    assert.equal(wf.definition.nodes.length, 2);
    const clash = await server.call("POST", "/workflows", {
      workflow: { name: "crud flow", definition: definition(ok, []) },
    });
    assert.equal(clash.status, 409);
    const bySlug = (await (await server.call("GET", "/workflows/crud-flow")).json()) as any;
    assert.equal(bySlug.data.id, wf.id);
    const list = (await (await server.call("GET", "/workflows")).json()) as any;
    assert.ok(list.data.some((w: any) => w.id === wf.id));
    const badPatch = await server.call("PATCH", `/workflows/${wf.id}`, {
      workflow: { definition: definition([["start", "start"]], [["start", "nowhere"]]) },
    });
    assert.equal(badPatch.status, 400);
    const patched = await server.call("PATCH", `/workflows/${wf.id}`, {
      workflow: { name: "Renamed", triggers: [{ type: "inbound_message" }] },
    });
    const patchedBody = (await patched.json()) as any;
    assert.equal(patched.status, 200);
    assert.equal(patchedBody.data.name, "Renamed");
    assert.equal(patchedBody.data.slug, "crud-flow");
    assert.deepEqual(patchedBody.data.triggers, [{ type: "inbound_message" }]);
    assert.equal((await server.call("DELETE", `/workflows/${wf.id}`)).status, 204);
    assert.equal((await server.call("GET", `/workflows/${wf.id}`)).status, 404);
  });

  it("another project's key sees none of these workflows, and cannot name their functions", async () => {
    const wf = await createWorkflow(server, "private flow", ok, [["start", "work"]]);
    const id = await start(server, wf.id);
    const created = await fetch(`${server.url}/admin/v1/projects`, {
      method: "POST",
      headers: { "x-admin-key": server.adminKey, "content-type": "application/json" },
      body: JSON.stringify({ project: { name: "other" } }),
    });
    const other = ((await created.json()) as any).data.api_key;
    const as = { "x-api-key": other };
    assert.equal((await server.call("GET", `/workflows/${wf.id}`, undefined, as)).status, 404);
    assert.equal(
      (await server.call("GET", `/workflow_executions/${id}`, undefined, as)).status,
      404,
    );
    assert.equal(
      (await server.call("POST", `/workflow_executions/${id}/resume`, { input: "x" }, as)).status,
      404,
    );
    const list = (await (await server.call("GET", "/workflows", undefined, as)).json()) as any;
    assert.deepEqual(list.data, []);
    const foreign = await server.call(
      "POST",
      "/workflows",
      {
        workflow: {
          name: "foreign",
          definition: definition([...ok, ["call", "function", { function_id: fns.greet.id }]], []),
        },
      },
      as,
    );
    assert.equal(foreign.status, 400);
  });
});

describe("workflow executions", () => {
  it("a branching workflow runs function, decide, set_variable, webhook and end nodes", async () => {
    const decide = {
      decision_type: "function",
      function_slug: "router",
      conditions: [{ label: "vip", description: "big spenders" }, { label: "standard" }],
    };
    const wf = await createWorkflow(
      server,
      "Branching",
      [
        ["start", "start"],
        ["greet", "function", { function_id: fns.greet.id }],
        ["route", "decide", decide],
        ["vip", "set_variable", { variable: "discount", value: 20 }],
        ["standard", "set_variable", { variable: "discount", value: 0 }],
        [
          "notify",
          "webhook",
          {
            url: `${upstreamUrl}/notify?tier={{vars.tier}}`,
            headers: { "x-tier": "{{vars.tier}}" },
            body: {
              name: "{{vars.name}}",
              phone: "{{context.phone_number}}",
              discount: "{{vars.discount}}",
              note: "{{vars.greeting}}, {{vars.missing}}!",
            },
            save_response_to: "hook",
          },
        ],
        ["done", "end"],
      ],
      [
        ["start", "greet"],
        ["greet", "route"],
        ["route", "vip", "vip"],
        ["route", "standard", "standard"],
        ["vip", "notify"],
        ["standard", "notify"],
        ["notify", "done"],
      ],
    );
    const big = await start(
      server,
      wf.id,
      { name: "Ann", amount: 500 },
      { phone_number: "+15550001" },
    );
    const small = await start(
      server,
      wf.id,
      { name: "Bo", amount: 5 },
      { phone_number: "+15550002" },
    );
    const a = await settled(server, big);
    const b = await settled(server, small);
    assert.equal(a.status, "ended", JSON.stringify(a.error_details));
    assert.equal(b.status, "ended", JSON.stringify(b.error_details));
    assert.equal(a.current_step_id, "done");
    assert.equal(a.error_details, null);
    assert.deepEqual(
      {
        greeting: a.vars.greeting,
        phone: a.vars.phone,
        tier: a.vars.tier,
        discount: a.vars.discount,
      },
      { greeting: "Hello Ann", phone: "+15550001", tier: "gold", discount: 20 },
    );
    assert.equal(b.vars.tier, "basic");
    assert.equal(b.vars.discount, 0);
    // The webhook got the templated request; one template alone keeps its type.
    const hit = hits.find((h) => h.path === "/notify?tier=gold")!;
    assert.equal(hit.method, "POST");
    assert.equal(hit.headers["x-tier"], "gold");
    assert.equal(hit.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(hit.body), {
      name: "Ann",
      phone: "+15550001",
      discount: 20,
      note: "Hello Ann, !",
    });
    assert.deepEqual(a.vars.hook, { ok: true, received: JSON.parse(hit.body) });
    // The decision is an event with its edge label.
    const events = await allEvents(server, big);
    const decision = events.find((e) => e.event_type === "decision_evaluated");
    assert.equal(decision.step_id, "route");
    assert.equal(decision.edge_label, "vip");
    assert.deepEqual(events.map((e) => e.event_type).slice(0, 3), [
      "execution_started",
      "step_entered",
      "step_completed",
    ]);
    assert.equal(events.at(-1).event_type, "execution_ended");
    // Each call is an invocation record with its trigger.
    for (const [fn, trigger] of [
      [fns.greet, "workflow_function"],
      [fns.router, "workflow_decide"],
    ]) {
      const records = await eventually(async () => {
        const res = await server.call("GET", `/functions/${fn.id}/invocations`);
        const list = ((await res.json()) as any).data;
        return list.length >= 2 ? list : undefined;
      });
      assert.ok(
        records.every((r: any) => r.trigger === trigger),
        JSON.stringify(records.map((r: any) => r.trigger)),
      );
      assert.match(
        records[0].request_headers["x-idempotency-key"],
        /^[0-9a-f-]{36}:(greet|route):1$/,
      );
    }
  });

  it("a function receives exactly the payload of §5.3, with the last 10 events oldest first", async () => {
    const sets: NodeSpec[] = [1, 2, 3, 4].map((i) => [
      `s${i}`,
      "set_variable",
      { variable: `v${i}`, value: i },
    ]);
    const wf = await createWorkflow(
      server,
      "Spied",
      [
        ["start", "start"],
        ...sets,
        ["spy", "function", { function_id: fns.spy.id }],
        [
          "pick",
          "decide",
          {
            decision_type: "function",
            function_id: fns.spy.id,
            conditions: [{ label: "left" }, { label: "right" }],
          },
        ],
        ["left", "end"],
        ["right", "end"],
      ],
      [
        ["start", "s1"],
        ["s1", "s2"],
        ["s2", "s3"],
        ["s3", "s4"],
        ["s4", "spy"],
        ["spy", "pick"],
        ["pick", "left", "left"],
        ["pick", "right", "right"],
      ],
    );
    const id = await start(server, wf.id, { name: "Cy" }, { phone_number: "+15550003" });
    const done = await settled(server, id);
    assert.equal(done.status, "ended", JSON.stringify(done.error_details));
    assert.equal(done.current_step_id, "right");

    const seen = done.vars.seen_spy;
    assert.deepEqual(Object.keys(seen).sort(), ["execution_context", "flow_events", "flow_info"]);
    assert.deepEqual(Object.keys(seen.execution_context).sort(), [
      "context",
      "metadata",
      "system",
      "vars",
    ]);
    assert.deepEqual(seen.execution_context.vars, { name: "Cy", v1: 1, v2: 2, v3: 3, v4: 4 });
    assert.deepEqual(seen.execution_context.context, { phone_number: "+15550003" });
    const system = seen.execution_context.system;
    assert.equal(system.workflow_id, wf.id);
    assert.equal(system.workflow_execution_id, id);
    assert.equal(system.trigger_type, "api_call");
    assert.ok(!Number.isNaN(Date.parse(system.started_at)));
    assert.equal(seen.execution_context.metadata.request.ip, "127.0.0.1");
    assert.ok(!Number.isNaN(Date.parse(seen.execution_context.metadata.request.timestamp)));
    assert.deepEqual(seen.flow_info, { id: wf.id, name: "Spied", step_id: "spy" });
    assert.equal(done.vars.key_spy, `${id}:spy:1`);
    assert.equal(done.vars.type_spy, "application/json");

    // flow_events: the 10 events stored before the call, oldest first, in the documented shape.
    const events = await allEvents(server, id);
    const entered = events.findIndex((e) => e.event_type === "step_entered" && e.step_id === "spy");
    const expected = events
      .slice(entered - 9, entered + 1)
      .map((e) => ({ event_type: e.event_type, payload: e.payload, created_at: e.created_at }));
    assert.equal(seen.flow_events.length, 10);
    assert.deepEqual(seen.flow_events, expected);

    const picked = done.vars.seen_pick;
    assert.deepEqual(Object.keys(picked).sort(), [
      "available_edges",
      "execution_context",
      "flow_events",
      "flow_info",
    ]);
    assert.deepEqual(picked.available_edges, ["left", "right"]);
    assert.equal(picked.flow_info.step_id, "pick");
    assert.equal(picked.execution_context.vars.key_spy, `${id}:spy:1`);
    assert.equal(done.vars.key_pick, `${id}:pick:1`);
  });

  it("each entry into a step gets its own idempotency key; answered vars merge by top-level key", async () => {
    const wf = await createWorkflow(
      server,
      "Looping",
      [
        ["start", "start"],
        ["bump", "function", { function_id: fns.bump.id }],
        [
          "check",
          "decide",
          {
            decision_type: "function",
            function_id: fns.loop.id,
            conditions: [{ label: "again" }, { label: "done" }],
          },
        ],
        ["merge", "function", { function_id: fns.misbehave.id, save_response_to: "merge_answer" }],
        ["text", "function", { function_id: fns.misbehave.id, save_response_to: "text_answer" }],
        ["mode", "set_variable", { variable: "mode", value: "text" }],
      ],
      [
        ["start", "bump"],
        ["bump", "check"],
        ["check", "bump", "again"],
        ["check", "merge", "done"],
        ["merge", "mode"],
        ["mode", "text"],
      ],
    );
    const id = await start(server, wf.id, { mode: "merge", kept: "yes", replaced: { old: true } });
    const done = await settled(server, id);
    assert.equal(done.status, "ended", JSON.stringify(done.error_details));
    assert.deepEqual(done.vars.keys, [`${id}:bump:1`, `${id}:bump:2`]);
    assert.equal(done.vars.round, 2);
    assert.equal(done.vars.kept, "yes");
    assert.deepEqual(done.vars.replaced, { fresh: true });
    assert.equal(done.vars.added, 1);
    assert.deepEqual(done.vars.merge_answer, { vars: { replaced: { fresh: true }, added: 1 } });
    assert.equal(done.vars.text_answer, "just text");
    const set = (await allEvents(server, id)).filter(
      (e) => e.event_type === "variables_set" && e.step_id === "mode",
    );
    assert.deepEqual(set[0].payload, { variables: { mode: "text" } });
  });

  it("failures end the execution as failed with the step, status code and message", async () => {
    const decide = {
      decision_type: "function",
      function_id: fns.misbehave.id,
      conditions: [{ label: "yes" }],
    };
    const wf = await createWorkflow(
      server,
      "Failing",
      [
        ["start", "start"],
        ["route", "decide", decide],
        ["call", "function", { function_id: fns.misbehave.id }],
        ["hook", "webhook", { url: `${upstreamUrl}/fail`, method: "PUT" }],
      ],
      [
        ["start", "route"],
        ["route", "call", "yes"],
        ["call", "hook"],
      ],
    );
    const cases: [vars: object, step: string, status: number | undefined, message: RegExp][] = [
      [{ mode: "unknown" }, "route", 200, /next_edge "nowhere", which is not one of: yes/],
      [{ mode: "missing" }, "route", 200, /no "next_edge"/],
      [{ mode: "text" }, "route", 200, /must answer a JSON object/],
      [{ mode: "throw" }, "route", 500, /kaput/],
      [{ mode: "status" }, "route", 502, /busy upstream/],
    ];
    const ids = await Promise.all(cases.map(([vars]) => start(server, wf.id, vars)));
    for (const [i, [, step, status, message]] of cases.entries()) {
      const e = await settled(server, ids[i]);
      assert.equal(e.status, "failed");
      assert.equal(e.error_details.step_id, step);
      assert.equal(e.error_details.status_code, status);
      assert.match(e.error_details.message, message);
      const types = (await allEvents(server, ids[i])).map((x) => x.event_type);
      assert.deepEqual(types.slice(-2), ["step_failed", "execution_failed"]);
    }
    // A webhook answering 500 fails its step.
    const patched = await server.call("PATCH", `/workflows/${wf.id}`, {
      workflow: {
        definition: definition(
          [
            ["start", "start"],
            [
              "hook",
              "webhook",
              { url: `${upstreamUrl}/fail`, method: "PUT", body: "raw {{vars.mode}}" },
            ],
          ],
          [["start", "hook"]],
        ),
      },
    });
    assert.equal(patched.status, 200);
    const hooked = await settled(server, await start(server, wf.id, { mode: "m" }));
    assert.equal(hooked.status, "failed");
    assert.deepEqual(
      { step: hooked.error_details.step_id, status: hooked.error_details.status_code },
      { step: "hook", status: 500 },
    );
    assert.match(hooked.error_details.message, /upstream broke/);
    const hit = hits.find((h) => h.path === "/fail" && h.body === "raw m")!;
    assert.equal(hit.method, "PUT");
  });

  it("a webhook header whose rendered value no header can carry fails its step, plainly", async () => {
    const wf = await createWorkflow(
      server,
      "Rendered header",
      [
        ["start", "start"],
        [
          "hook",
          "webhook",
          { url: `${upstreamUrl}/rendered`, headers: { "X-Who": "{{vars.who}}" } },
        ],
      ],
      [["start", "hook"]],
    );
    const bad = await settled(server, await start(server, wf.id, { who: "Jürgen" }));
    assert.equal(bad.status, "failed");
    assert.equal(bad.error_details.step_id, "hook");
    assert.match(
      bad.error_details.message,
      /^The webhook header "X-Who" cannot be sent: its value contains "ü", which an HTTP header cannot carry/,
    );
    assert.ok(!hits.some((h) => h.path === "/rendered"));
    const good = await settled(server, await start(server, wf.id, { who: "Juergen" }));
    assert.equal(good.status, "ended", JSON.stringify(good.error_details));
    assert.equal(hits.find((h) => h.path === "/rendered")?.headers["x-who"], "Juergen");
  });

  it("a running execution keeps the definition it started with", async () => {
    const wf = await createWorkflow(
      server,
      "Versioned",
      [
        ["start", "start"],
        ["wait", "wait_for_response"],
        ["mark", "set_variable", { variable: "version", value: 1 }],
      ],
      [
        ["start", "wait"],
        ["wait", "mark"],
      ],
    );
    const id = await start(server, wf.id);
    await settled(server, id, "waiting");
    await server.call("PATCH", `/workflows/${wf.id}`, {
      workflow: {
        definition: definition(
          [
            ["start", "start"],
            ["wait", "wait_for_response"],
            ["mark", "set_variable", { variable: "version", value: 2 }],
          ],
          [
            ["start", "wait"],
            ["wait", "mark"],
          ],
        ),
      },
    });
    await server.call("POST", `/workflow_executions/${id}/resume`, { input: "go" });
    assert.equal((await settled(server, id)).vars.version, 1);
    const fresh = await start(server, wf.id);
    await settled(server, fresh, "waiting");
    await server.call("POST", `/workflow_executions/${fresh}/resume`, { input: "go" });
    assert.equal((await settled(server, fresh)).vars.version, 2);
  });

  it("wait_for_response waits for resume (409 otherwise) and continues on a timeout", async () => {
    const wf = await createWorkflow(
      server,
      "Asking",
      [
        ["start", "start"],
        ["ask", "wait_for_response", { save_response_to: "answer" }],
        ["reply", "set_variable", { variable: "reply", value: "You said {{vars.answer}}" }],
        ["done", "end"],
      ],
      [
        ["start", "ask"],
        ["ask", "reply"],
        ["reply", "done"],
      ],
    );
    const id = await start(server, wf.id);
    const waiting = await settled(server, id, "waiting");
    assert.equal(waiting.current_step_id, "ask");
    const bad = await server.call("POST", `/workflow_executions/${id}/resume`, { text: "x" });
    assert.equal(bad.status, 400);
    const res = await server.call("POST", `/workflow_executions/${id}/resume`, { input: "blue" });
    assert.equal(res.status, 202);
    const body = (await res.json()) as any;
    assert.equal(body.execution_id, id);
    assert.ok(typeof body.message === "string" && body.status !== "waiting");
    const done = await settled(server, id, "ended");
    assert.equal(done.vars.answer, "blue");
    assert.equal(done.vars.last_user_input, "blue");
    assert.equal(done.vars.reply, "You said blue");
    assert.deepEqual(done.system.last_resume, { reason: "input" });
    const again = await server.call("POST", `/workflow_executions/${id}/resume`, { input: "red" });
    assert.equal(again.status, 409);
    const types = (await allEvents(server, id)).map((e) => e.event_type);
    assert.ok(types.includes("execution_waiting") && types.includes("execution_resumed"));

    const timed = await createWorkflow(
      server,
      "Impatient",
      [
        ["start", "start"],
        ["ask", "wait_for_response", { timeout_minutes: 0.01 }],
        ["after", "set_variable", { variable: "moved_on", value: true }],
      ],
      [
        ["start", "ask"],
        ["ask", "after"],
      ],
    );
    const t = await start(server, timed.id);
    const ended = await settled(server, t, "ended", 5000);
    assert.equal(ended.vars.moved_on, true);
    assert.equal(ended.vars.last_user_input, undefined);
    assert.deepEqual(ended.system.last_resume, { reason: "timeout" });
  });

  it("events are listed newest first with a cursor, and bad paging values are 400s", async () => {
    const wf = await createWorkflow(
      server,
      "Eventful",
      [
        ["start", "start"],
        ["a", "set_variable", { variable: "a", value: 1 }],
        ["b", "set_variable", { variable: "b", value: 2 }],
      ],
      [
        ["start", "a"],
        ["a", "b"],
      ],
    );
    const id = await start(server, wf.id);
    await settled(server, id, "ended");
    const first = (await (
      await server.call("GET", `/workflow_executions/${id}/events?limit=4`)
    ).json()) as any;
    assert.equal(first.data.length, 4);
    assert.equal(first.data[0].event_type, "execution_ended");
    for (const e of first.data)
      assert.deepEqual(Object.keys(e).sort(), [
        "created_at",
        "edge_label",
        "event_type",
        "id",
        "payload",
        "step_id",
      ]);
    const rest = (await (
      await server.call(
        "GET",
        `/workflow_executions/${id}/events?limit=100&after=${first.meta.next_cursor}`,
      )
    ).json()) as any;
    assert.equal(rest.meta.next_cursor, null);
    assert.equal(rest.data.at(-1).event_type, "execution_started");
    const all = [...first.data, ...rest.data];
    assert.equal(new Set(all.map((e) => e.id)).size, all.length);
    const whole = (await (
      await server.call("GET", `/workflow_executions/${id}/events`)
    ).json()) as any;
    assert.deepEqual(
      whole.data.map((e: any) => e.id),
      all.map((e) => e.id),
    );
    for (const q of [
      "limit=abc",
      "limit=0",
      "limit=101",
      "after=00000000-0000-4000-8000-000000000000",
    ])
      assert.equal(
        (await server.call("GET", `/workflow_executions/${id}/events?${q}`)).status,
        400,
        q,
      );
    assert.equal((await server.call("GET", `/workflow_executions/not-an-id`)).status, 404);
    const listed = (await (
      await server.call("GET", `/workflows/${wf.id}/executions`)
    ).json()) as any;
    assert.equal(listed.data[0].id, id);
  });
});

describe("workflow durability", () => {
  it("after a crash, running executions continue (the interrupted step again, same key) and waiting ones wait", async () => {
    const calls: string[] = [];
    const recorder = http.createServer((req, res) => {
      calls.push(String(req.headers["x-key"]));
      res.end("ok");
    });
    await new Promise<void>((r) => recorder.listen(0, "127.0.0.1", r));
    const recorderUrl = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/`;
    const first = await startServer();
    let second: TestServer | undefined;
    try {
      const slow = await deployFunction(first, {
        name: "slow",
        code: `async function handler(request) {
          await fetch(${JSON.stringify(recorderUrl)}, { headers: { "x-key": request.headers.get("x-idempotency-key") } });
          await new Promise((r) => setTimeout(r, 1500));
          return Response.json({ vars: { slow_done: true } });
        }`,
      });
      const slowFlow = await createWorkflow(
        first,
        "slow flow",
        [
          ["start", "start"],
          ["slow", "function", { function_id: slow.id }],
          ["after", "set_variable", { variable: "after", value: "{{vars.slow_done}}" }],
        ],
        [
          ["start", "slow"],
          ["slow", "after"],
        ],
      );
      const waitFlow = await createWorkflow(
        first,
        "wait flow",
        [
          ["start", "start"],
          ["ask", "wait_for_response", { save_response_to: "answer" }],
          ["done", "end"],
        ],
        [
          ["start", "ask"],
          ["ask", "done"],
        ],
      );
      const timeoutFlow = await createWorkflow(
        first,
        "timeout flow",
        [
          ["start", "start"],
          ["ask", "wait_for_response", { timeout_minutes: 0.02 }],
          ["done", "end"],
        ],
        [
          ["start", "ask"],
          ["ask", "done"],
        ],
      );
      const waiting = await start(first, waitFlow.id);
      const timing = await start(first, timeoutFlow.id);
      await settled(first, waiting, "waiting");
      await settled(first, timing, "waiting");
      const running = await start(first, slowFlow.id);
      await eventually(async () => (calls.length === 1 ? true : undefined));
      assert.equal((await execution(first, running)).status, "running");

      await first.stop("SIGKILL");
      await eventually(async () => (workerdPidsFor(first.dataDir).length === 0 ? true : undefined));
      second = await startServer({
        dataDir: first.dataDir,
        env: { WORKERBASE_API_KEY: first.key },
      });

      const resumed = await settled(second, running, "ended");
      assert.equal(resumed.vars.after, true);
      assert.deepEqual(calls, [`${running}:slow:1`, `${running}:slow:1`]);
      const entries = (await allEvents(second, running)).filter(
        (e) => e.event_type === "step_entered" && e.step_id === "slow",
      );
      assert.equal(entries.length, 1);

      const timedOut = await settled(second, timing, "ended", 8000);
      assert.deepEqual(timedOut.system.last_resume, { reason: "timeout" });

      assert.equal((await execution(second, waiting)).status, "waiting");
      const res = await second.call("POST", `/workflow_executions/${waiting}/resume`, {
        input: "still here",
      });
      assert.equal(res.status, 202);
      const done = await settled(second, waiting, "ended");
      assert.equal(done.vars.answer, "still here");
    } finally {
      await second?.stop();
      await first.stop();
      recorder.close();
    }
  });
});
