import assert from "node:assert/strict";
import crypto from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  deployFunction,
  eventually,
  startServer,
  storeQuery,
  type TestServer,
} from "../helpers/server.js";
import { startReceiver, type Receiver } from "../helpers/receiver.js";

let server: TestServer;
let receiver: Receiver;

const env = {
  WORKERBASE_WEBHOOK_RETRY_DELAYS: "1,1,1",
  WHATSAPP_APP_SECRET: "app-secret-for-tests",
  WHATSAPP_VERIFY_TOKEN: "verify-me",
};

async function subscribe(webhook: Record<string, unknown>): Promise<any> {
  const res = await server.call("POST", "/webhooks", { webhook });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as any).data;
}

async function simulate(phone: string, text: string): Promise<any> {
  const res = await server.call("POST", "/whatsapp/simulate", { phone_number: phone, text });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as any).data;
}

async function deliveries(query: string): Promise<any[]> {
  const res = await server.call("GET", `/webhook_deliveries?${query}`);
  assert.equal(res.status, 200);
  return ((await res.json()) as any).data;
}

function hmac(secret: string, body: string): string {
  return crypto.createHmac("sha256", secret).update(body).digest("hex");
}

/** A phone number no other test uses, so conversations stay apart. */
let phoneSeq = 0;
function phone(): string {
  return `+1555${String(Date.now() % 100000).padStart(5, "0")}${String(phoneSeq++).padStart(2, "0")}`;
}

before(async () => {
  receiver = await startReceiver();
  server = await startServer({ env });
});
after(async () => {
  await receiver.close(); // drops hanging requests, so no attempt holds up shutdown
  await server.stop();
});

describe("webhook subscriptions", () => {
  it("unknown events, bad URLs, reserved headers and invalid function ids are refused", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ url: `${receiver.url}/x`, events: ["whatsapp.message.nope"] }, "events.0"],
      [{ url: `${receiver.url}/x`, events: [] }, "events"],
      [{ url: "not a url", events: ["whatsapp.message.received"] }, "url"],
      [{ url: "ftp://example.com/x", events: ["whatsapp.message.received"] }, "url"],
      [
        {
          url: `${receiver.url}/x`,
          events: ["whatsapp.message.received"],
          headers: { "X-Webhook-Signature": "forged" },
        },
        "headers.X-Webhook-Signature",
      ],
      [{ function_id: crypto.randomUUID(), events: ["whatsapp.message.received"] }, "function_id"],
      [{ function_id: "no-such-fn", events: ["whatsapp.message.received"] }, "function_id"],
      [
        { url: `${receiver.url}/x`, function_id: "x", events: ["whatsapp.message.received"] },
        "url",
      ],
      [{ events: ["whatsapp.message.received"] }, "url"],
    ];
    for (const [webhook, field] of cases) {
      const res = await server.call("POST", "/webhooks", { webhook });
      assert.equal(res.status, 400, JSON.stringify(webhook));
      const body = (await res.json()) as any;
      assert.ok(
        body.details.some((d: any) => d.field === field),
        `${JSON.stringify(webhook)} → ${JSON.stringify(body)}`,
      );
    }
    assert.equal((await server.call("POST", "/webhooks", "{")).status, 400);
    assert.equal((await server.call("GET", "/webhooks/not-an-id")).status, 404);
    assert.equal((await server.call("GET", `/webhooks/${crypto.randomUUID()}`)).status, 404);
  });

  it("headers a request cannot carry, and X-Workerbase-* headers, are refused naming the header", async () => {
    const url = `${receiver.url}/headers`;
    const cases: [Record<string, string>, string, RegExp][] = [
      [
        { "X-Price": "price €5" },
        "headers.X-Price",
        /contains "€", which an HTTP header cannot carry/,
      ],
      [{ "X-Note": "one\ntwo" }, "headers.X-Note", /a line break/],
      [{ "X-Nul": "a\u0000b" }, "headers.X-Nul", /a control character \(U\+0000\)/],
      [{ "X-Workerbase-Probe": "1" }, "headers.X-Workerbase-Probe", /Workerbase's own/],
      [{ "x-workerbase-url": "http://elsewhere/" }, "headers.x-workerbase-url", /Workerbase's own/],
      [{ "Bad Name": "x" }, "headers.Bad Name", /not a valid header name/],
    ];
    for (const [headers, field, message] of cases) {
      const res = await server.call("POST", "/webhooks", {
        webhook: { url, events: ["whatsapp.message.received"], headers },
      });
      const body = (await res.json()) as any;
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(body.details[0].field, field, JSON.stringify(body));
      assert.ok(body.error.startsWith(`Invalid ${field}: `), body.error);
      assert.match(body.error, message);
    }
    const list = ((await (await server.call("GET", "/webhooks")).json()) as any).data;
    assert.ok(!list.some((w: any) => w.url === url), "nothing was saved");

    const hook = await subscribe({
      url,
      events: ["whatsapp.message.received"],
      headers: { "X-Tab": "a\tb" },
    });
    for (const [headers, field] of cases) {
      const res = await server.call("PATCH", `/webhooks/${hook.id}`, { webhook: { headers } });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as any).details[0].field, field);
    }
    const got = ((await (await server.call("GET", `/webhooks/${hook.id}`)).json()) as any).data;
    assert.deepEqual(got.headers, { "X-Tab": "a\tb" });
    await server.call("DELETE", `/webhooks/${hook.id}`);
  });

  it("the secret key is shown on create only; get, list, update and delete work", async () => {
    const created = await subscribe({
      url: `${receiver.url}/crud`,
      events: ["whatsapp.message.received", "whatsapp.message.received"],
      headers: { "X-Source": "tests" },
    });
    assert.match(created.secret_key, /^whsec_[0-9a-f]{48}$/);
    assert.deepEqual(created.events, ["whatsapp.message.received"]);
    assert.equal(created.active, true);
    assert.equal(created.function_id, null);
    const got = ((await (await server.call("GET", `/webhooks/${created.id}`)).json()) as any).data;
    assert.equal(got.secret_key, undefined);
    assert.deepEqual(got.headers, { "X-Source": "tests" });
    const list = ((await (await server.call("GET", "/webhooks")).json()) as any).data;
    assert.ok(list.some((w: any) => w.id === created.id && w.secret_key === undefined));
    const patched = await server.call("PATCH", `/webhooks/${created.id}`, {
      webhook: { active: false, events: ["workflow.execution.failed"] },
    });
    assert.equal(patched.status, 200);
    const p = ((await patched.json()) as any).data;
    assert.equal(p.active, false);
    assert.deepEqual(p.events, ["workflow.execution.failed"]);
    assert.equal(p.url, `${receiver.url}/crud`);
    const bad = await server.call("PATCH", `/webhooks/${created.id}`, {
      webhook: { events: ["nope"] },
    });
    assert.equal(bad.status, 400);
    assert.equal((await server.call("DELETE", `/webhooks/${created.id}`)).status, 204);
    assert.equal((await server.call("GET", `/webhooks/${created.id}`)).status, 404);
  });

  it("a local receiver gets signed v2 deliveries with the documented headers, in event order", async () => {
    const hook = await subscribe({
      url: `${receiver.url}/signed`,
      events: ["whatsapp.message.received", "whatsapp.conversation.created"],
      secret_key: "my-own-secret-key",
      headers: { "X-Custom": "yes" },
    });
    const number = phone();
    const sent = await simulate(number, "hello there");
    const [created, message] = await receiver.waitFor("/signed", 2);
    assert.equal(created.headers["x-webhook-event"], "whatsapp.conversation.created");
    assert.equal(message.headers["x-webhook-event"], "whatsapp.message.received");
    for (const r of [created, message]) {
      assert.equal(r.headers["x-webhook-signature"], hmac("my-own-secret-key", r.body));
      assert.equal(r.headers["x-webhook-payload-version"], "v2");
      assert.equal(r.headers["x-custom"], "yes");
      assert.equal(r.headers["content-type"], "application/json");
      assert.match(String(r.headers["x-idempotency-key"]), /^[0-9a-f-]{36}$/);
    }
    assert.notEqual(created.headers["x-idempotency-key"], message.headers["x-idempotency-key"]);
    const payload = JSON.parse(message.body);
    assert.equal(payload.message.id, sent.message_id);
    assert.equal(payload.message.type, "text");
    assert.equal(payload.message.text.body, "hello there");
    assert.equal(payload.message.content, "hello there");
    assert.equal(payload.message.phone_number, number);
    assert.equal(payload.message.kapso.direction, "inbound");
    assert.equal(payload.conversation.id, sent.conversation_id);
    assert.equal(payload.conversation.phone_number, number);
    assert.equal(payload.conversation.phone_number_id, "simulator");
    assert.equal(payload.conversation.status, "active");
    assert.equal(payload.is_new_conversation, true);
    assert.equal(payload.phone_number_id, "simulator");
    assert.equal(JSON.parse(created.body).conversation.id, sent.conversation_id);

    const rows = await eventually(async () => {
      const list = await deliveries(`webhook_id=${hook.id}`);
      return list.length === 2 && list.every((d) => d.status === "delivered") ? list : undefined;
    });
    assert.deepEqual(
      rows.map((d) => d.event),
      ["whatsapp.message.received", "whatsapp.conversation.created"], // newest first
    );
    assert.equal(rows[0].id, message.headers["x-idempotency-key"]);
    assert.equal(rows[0].attempts, 1);
    assert.equal(rows[0].last_status_code, 200);
    assert.ok(rows[0].delivered_at);

    const again = await simulate(number, "second");
    const third = (await receiver.waitFor("/signed", 3))[2];
    assert.equal(JSON.parse(third.body).is_new_conversation, false);
    assert.equal(JSON.parse(third.body).conversation.id, again.conversation_id);
  });

  it("a receiver that fails once gets the retry with the same idempotency key", async () => {
    receiver.answer((r, seen) => (r.path === "/flaky" && seen === 1 ? 503 : 200));
    const hook = await subscribe({
      url: `${receiver.url}/flaky`,
      events: ["whatsapp.message.received"],
    });
    await simulate(phone(), "retry me");
    const [first, second] = await receiver.waitFor("/flaky", 2, 8000);
    assert.equal(first.headers["x-idempotency-key"], second.headers["x-idempotency-key"]);
    assert.equal(first.body, second.body);
    assert.equal(first.headers["x-webhook-signature"], second.headers["x-webhook-signature"]);
    assert.ok(second.at - first.at >= 900, `retried after ${second.at - first.at} ms`);
    const [row] = await eventually(async () => {
      const list = await deliveries(`webhook_id=${hook.id}&status=delivered`);
      return list.length === 1 ? list : undefined;
    });
    assert.equal(row.attempts, 2);
    assert.equal(row.id, first.headers["x-idempotency-key"]);
  });

  it("a receiver that keeps failing gets 4 attempts and the delivery ends failed", async () => {
    receiver.answer((r) => (r.path === "/down" ? 500 : 200));
    const hook = await subscribe({
      url: `${receiver.url}/down`,
      events: ["whatsapp.message.received"],
    });
    await simulate(phone(), "never lands");
    const [row] = await eventually(async () => {
      const list = await deliveries(`webhook_id=${hook.id}&status=failed`);
      return list.length === 1 ? list : undefined;
    }, 10_000);
    assert.equal(row.attempts, 4);
    assert.equal(row.last_status_code, 500);
    assert.match(row.last_error, /answered 500/);
    assert.equal(receiver.at("/down").length, 4);
  });

  it("a hanging receiver does not hold up another subscription or other conversations", async () => {
    receiver.answer((r) => (r.path === "/hang" ? "hang" : 200));
    await subscribe({ url: `${receiver.url}/hang`, events: ["whatsapp.message.received"] });
    await subscribe({ url: `${receiver.url}/beside`, events: ["whatsapp.message.received"] });
    const started = Date.now();
    await simulate(phone(), "one");
    await simulate(phone(), "two");
    await receiver.waitFor("/hang", 2, 3000);
    await receiver.waitFor("/beside", 2, 3000);
    assert.ok(Date.now() - started < 3000);
  });

  it("a conversation's events wait for an earlier one's retry; other conversations go ahead", async () => {
    receiver.answer((r, seen) => (r.path === "/ordered" && seen === 1 ? 500 : 200));
    await subscribe({ url: `${receiver.url}/ordered`, events: ["whatsapp.message.received"] });
    const a = phone();
    await simulate(a, "a1");
    await receiver.waitFor("/ordered", 1);
    await simulate(a, "a2");
    await simulate(phone(), "b1");
    const got = await receiver.waitFor("/ordered", 4, 8000);
    const texts = got.map((r) => JSON.parse(r.body).message.content);
    // b1 goes at once; a2 waits until a1's retry has landed.
    assert.deepEqual(texts, ["a1", "b1", "a1", "a2"]);
  });

  it("deleting a subscription cancels its pending deliveries", async () => {
    receiver.answer((r) => (r.path === "/gone" ? 500 : 200));
    const hook = await subscribe({
      url: `${receiver.url}/gone`,
      events: ["whatsapp.message.received"],
    });
    await simulate(phone(), "cancel me");
    await receiver.waitFor("/gone", 1);
    await eventually(async () => {
      const [d] = await deliveries(`webhook_id=${hook.id}`);
      return d?.attempts === 1 ? d : undefined;
    });
    assert.equal((await server.call("DELETE", `/webhooks/${hook.id}`)).status, 204);
    const [row] = await deliveries(`webhook_id=${hook.id}`);
    assert.equal(row.status, "failed");
    assert.match(row.last_error, /Cancelled/);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(receiver.at("/gone").length, 1);
  });

  it("the test call answers with the outcome of its one attempt", async () => {
    receiver.answer((r) => (r.path === "/test-fail" ? 502 : 200));
    const good = await subscribe({
      url: `${receiver.url}/test-ok`,
      events: ["workflow.execution.failed"],
    });
    const res = await server.call("POST", `/webhooks/${good.id}/test`);
    assert.equal(res.status, 200);
    const ok = ((await res.json()) as any).data;
    assert.equal(ok.success, true);
    assert.equal(ok.status_code, 200);
    assert.equal(ok.event, "workflow.execution.failed");
    const [r] = receiver.at("/test-ok");
    assert.equal(r.headers["x-webhook-event"], "workflow.execution.failed");
    assert.equal(r.headers["x-webhook-signature"], hmac(good.secret_key, r.body));
    assert.equal(JSON.parse(r.body).test, true);

    const bad = await subscribe({
      url: `${receiver.url}/test-fail`,
      events: ["whatsapp.message.received"],
    });
    const failed = ((await (await server.call("POST", `/webhooks/${bad.id}/test`)).json()) as any)
      .data;
    assert.equal(failed.success, false);
    assert.equal(failed.status_code, 502);
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(receiver.at("/test-fail").length, 1, "a test is never retried");
  });

  it("the deliveries listing validates its query and pages with after", async () => {
    for (const q of [
      "limit=abc",
      "limit=0",
      "limit=101",
      "status=done",
      "webhook_id=x",
      "after=nope",
    ])
      assert.equal((await server.call("GET", `/webhook_deliveries?${q}`)).status, 400, q);
    const hook = await subscribe({
      url: `${receiver.url}/paged`,
      events: ["whatsapp.message.received"],
    });
    for (const t of ["p1", "p2", "p3"]) await simulate(phone(), t);
    await receiver.waitFor("/paged", 3);
    const res = await server.call("GET", `/webhook_deliveries?webhook_id=${hook.id}&limit=2`);
    const page = (await res.json()) as any;
    assert.equal(page.data.length, 2);
    assert.ok(page.meta.next_cursor);
    const rest = await deliveries(`webhook_id=${hook.id}&limit=2&after=${page.meta.next_cursor}`);
    assert.equal(rest.length, 1);
    assert.ok(!page.data.some((d: any) => d.id === rest[0].id));
    for (const field of [
      "id",
      "webhook_id",
      "event",
      "status",
      "attempts",
      "last_status_code",
      "last_error",
      "created_at",
      "delivered_at",
    ])
      assert.ok(field in rest[0], field);
  });
});

describe("function subscriptions", () => {
  const crm = `async function handler(request, env) {
  if (request.headers.get("X-Webhook-Event") !== "whatsapp.message.received")
    return new Response("ignored");
  const payload = await request.json();
  const key = "session:" + payload.message.phone_number;
  const session = (await env.KV.get(key, "json")) ?? { count: 0, messages: [] };
  session.count += 1;
  session.messages.push(payload.message.content);
  session.signed = /^[0-9a-f]{64}$/.test(request.headers.get("X-Webhook-Signature") ?? "");
  await env.KV.put(key, JSON.stringify(session));
  console.log("crm updated", payload.message.phone_number, session.count);
  return Response.json({ ok: true });
}`;

  it("a CRM function subscribed by function_id keeps a correct per-phone count", async () => {
    const fn = await deployFunction(server, { name: "CRM", code: crm });
    assert.equal(fn.status, "deployed");
    const hook = await subscribe({ function_id: "crm", events: ["whatsapp.message.received"] });
    assert.equal(hook.function_id, fn.id);
    assert.equal(hook.url, null);
    const number = phone();
    await simulate(number, "first");
    await simulate(number, "second");
    await simulate(phone(), "someone else");
    const session = await eventually(async () => {
      const res = await server.call("GET", `/kv/values/${encodeURIComponent(`session:${number}`)}`);
      if (res.status !== 200) return undefined;
      const value = JSON.parse(await res.text());
      return value.count === 2 ? value : undefined;
    }, 10_000);
    assert.deepEqual(session.messages, ["first", "second"]);
    assert.equal(session.signed, true);
    const invocations = await eventually(async () => {
      const res = await server.call("GET", `/functions/${fn.id}/invocations`);
      const list = ((await res.json()) as any).data;
      return list.length >= 3 ? list : undefined;
    });
    assert.ok(invocations.every((i: any) => i.trigger === "webhook"));
    assert.equal(invocations[0].request_headers["x-webhook-event"], "whatsapp.message.received");
    assert.equal(invocations[0].request_headers["x-api-key"], undefined);
  });

  it("a delivery to a function never carries X-Workerbase-* headers, whatever the stored row says", async () => {
    const fn = await deployFunction(server, {
      name: "Header witness",
      code: `async function handler(request, env) {
  const payload = await request.json();
  const names = [...request.headers.keys()];
  await env.KV.put("witness:" + payload.message.content, JSON.stringify(names));
  return Response.json({ ok: true });
}`,
    });
    const hook = await subscribe({
      function_id: fn.id,
      events: ["whatsapp.message.received"],
      headers: { "X-Source": "tests" },
    });
    // A row stored before such headers were refused (or written around the API).
    await storeQuery(server, "update webhooks set headers = ? where id = ?", [
      JSON.stringify({
        "X-Source": "tests",
        "X-Workerbase-Probe": "1",
        "X-Workerbase-Url": "http://elsewhere.invalid/",
        Authorization: "Bearer not-for-functions",
      }),
      hook.id,
    ]);
    const text = `witness ${crypto.randomUUID()}`;
    await simulate(phone(), text);
    // The handler ran: with X-Workerbase-Probe it would have been answered as a deploy probe.
    const names: string[] = await eventually(async () => {
      const res = await server.call("GET", `/kv/values/${encodeURIComponent(`witness:${text}`)}`);
      return res.status === 200 ? JSON.parse(await res.text()) : undefined;
    }, 10_000);
    assert.ok(names.includes("x-source"), JSON.stringify(names));
    assert.ok(names.includes("x-webhook-signature"), JSON.stringify(names));
    assert.deepEqual(
      names.filter((n) => n.startsWith("x-workerbase-") || n === "authorization"),
      [],
    );
    const [row] = await eventually(async () => {
      const list = await deliveries(`webhook_id=${hook.id}`);
      return list[0]?.status === "delivered" ? list : undefined;
    });
    assert.equal(row.last_status_code, 200);
    // Recorded just after the function answered.
    const invocations = await eventually(async () => {
      const res = await server.call("GET", `/functions/${fn.id}/invocations`);
      const list = ((await res.json()) as any).data;
      return list.length >= 1 ? list : undefined;
    });
    for (const i of invocations)
      assert.deepEqual(
        Object.keys(i.request_headers).filter((n) => n.startsWith("x-workerbase-")),
        [],
      );
  });

  it("a function that is not deployed is a failed attempt", async () => {
    const created = await server.call("POST", "/functions", {
      function: { name: "Draft receiver", code: crm },
    });
    const draft = ((await created.json()) as any).data;
    const hook = await subscribe({ function_id: draft.id, events: ["whatsapp.message.received"] });
    await simulate(phone(), "nobody home");
    const [row] = await eventually(async () => {
      const list = await deliveries(`webhook_id=${hook.id}`);
      return list[0]?.attempts >= 1 ? list : undefined;
    });
    assert.match(row.last_error, /not deployed/);
    assert.equal(row.last_status_code, 422);
  });
});

describe("restarts", () => {
  it("deliveries pending when the server stops are made after it starts again", async () => {
    const apiKey = "wb_restart_" + crypto.randomBytes(8).toString("hex");
    const first = await startServer({
      env: { WORKERBASE_API_KEY: apiKey, WORKERBASE_WEBHOOK_RETRY_DELAYS: "1,1,1" },
    });
    // Not configured for WhatsApp: Meta's routes say so.
    assert.equal(
      (await fetch(`${first.url}/webhooks/whatsapp`, { method: "POST", body: "{}" })).status,
      503,
    );
    assert.equal(
      (
        await fetch(
          `${first.url}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1`,
        )
      ).status,
      403,
    );
    const down = await startReceiver();
    const port = down.port;
    await down.close(); // the receiver is down: attempts fail with a refused connection
    const created = await first.call("POST", "/webhooks", {
      webhook: { url: `http://127.0.0.1:${port}/back`, events: ["whatsapp.message.received"] },
    });
    const hook = ((await created.json()) as any).data;
    for (const text of ["r1", "r2"]) {
      const res = await first.call("POST", "/whatsapp/simulate", { phone_number: phone(), text });
      assert.equal(res.status, 202);
    }
    const list = async (s: TestServer) =>
      ((await (await s.call("GET", `/webhook_deliveries?webhook_id=${hook.id}`)).json()) as any)
        .data;
    await eventually(async () => {
      const rows = await list(first);
      return rows.length === 2 && rows.every((d: any) => d.attempts >= 1) ? rows : undefined;
    });
    assert.equal(await first.stop(), 0);

    const back = await startReceiver(port);
    try {
      const second = await startServer({
        dataDir: first.dataDir,
        env: { WORKERBASE_API_KEY: apiKey, WORKERBASE_WEBHOOK_RETRY_DELAYS: "1,1,1" },
      });
      try {
        const got = await back.waitFor("/back", 2, 10_000);
        assert.deepEqual(got.map((r) => JSON.parse(r.body).message.content).sort(), ["r1", "r2"]);
        const rows = await eventually(async () => {
          const r = await list(second);
          return r.every((d: any) => d.status === "delivered") ? r : undefined;
        });
        assert.deepEqual(
          rows.map((d: any) => d.id).sort(),
          got.map((r) => r.headers["x-idempotency-key"]).sort(),
        );
      } finally {
        await second.stop();
      }
    } finally {
      await back.close();
    }
  });
});
