import assert from "node:assert/strict";
import crypto from "node:crypto";
import { after, before, describe, it } from "node:test";
import { deployFunction, eventually, startServer, type TestServer } from "../helpers/server.js";
import { startReceiver, type Receiver } from "../helpers/receiver.js";
import { parseArgs } from "../../src/cli/args.js";
import { out } from "../../src/cli/output.js";
import { whatsappCommands } from "../../src/cli/whatsapp.js";

const appSecret = "meta-app-secret";
let server: TestServer;
let receiver: Receiver;
/** A second project, made through the admin API. */
let other: { id: string; key: string };

before(async () => {
  receiver = await startReceiver();
  server = await startServer({
    env: {
      WORKERBASE_WEBHOOK_RETRY_DELAYS: "1,1,1",
      WHATSAPP_APP_SECRET: appSecret,
      WHATSAPP_VERIFY_TOKEN: "the-verify-token",
    },
  });
  const res = await fetch(`${server.url}/admin/v1/projects`, {
    method: "POST",
    headers: { "x-admin-key": server.adminKey, "content-type": "application/json" },
    body: JSON.stringify({ project: { name: "other" } }),
  });
  const { data } = (await res.json()) as any;
  other = { id: data.id, key: data.api_key };
});
after(async () => {
  await receiver.close();
  await server.stop();
});

function metaPayload(phoneNumberId: string, messages: Record<string, unknown>[]) {
  return JSON.stringify({
    object: "whatsapp_business_account",
    entry: [
      {
        id: "WABA_ID",
        changes: [
          {
            field: "messages",
            value: {
              messaging_product: "whatsapp",
              metadata: { display_phone_number: "15550000000", phone_number_id: phoneNumberId },
              contacts: messages.map((m) => ({ profile: { name: "Ada" }, wa_id: m.from })),
              messages,
            },
          },
        ],
      },
    ],
  });
}

function textMessage(from: string, text: string, id = `wamid.${crypto.randomUUID()}`) {
  return {
    from,
    id,
    timestamp: String(Math.floor(Date.now() / 1000)),
    type: "text",
    text: { body: text },
  };
}

function signature(body: string, secret = appSecret): string {
  return "sha256=" + crypto.createHmac("sha256", secret).update(body).digest("hex");
}

function postMeta(body: string, sig?: string): Promise<Response> {
  return fetch(`${server.url}/webhooks/whatsapp`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(sig ? { "x-hub-signature-256": sig } : {}) },
    body,
  });
}

async function conversations(key = server.key): Promise<any[]> {
  const res = await server.call("GET", "/whatsapp/conversations", undefined, { "x-api-key": key });
  return ((await res.json()) as any).data;
}

async function messagesOf(conversationId: string, key = server.key): Promise<any[]> {
  const res = await server.call(
    "GET",
    `/whatsapp/conversations/${conversationId}/messages?limit=100`,
    undefined,
    { "x-api-key": key },
  );
  assert.equal(res.status, 200);
  return ((await res.json()) as any).data;
}

async function subscribe(path: string, events: string[], key = server.key): Promise<any> {
  const res = await server.call(
    "POST",
    "/webhooks",
    { webhook: { url: `${receiver.url}${path}`, events } },
    { "x-api-key": key },
  );
  assert.equal(res.status, 201);
  return ((await res.json()) as any).data;
}

describe("Meta's webhook routes", () => {
  it("the verification challenge is answered only with the right token", async () => {
    const ok = await fetch(
      `${server.url}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=the-verify-token&hub.challenge=1158201444`,
    );
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), "1158201444");
    const wrong = await fetch(
      `${server.url}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1`,
    );
    assert.equal(wrong.status, 403);
    assert.equal((await fetch(`${server.url}/webhooks/whatsapp`)).status, 403);
  });

  it("a signed Meta payload stores the conversation and message and emits v2 events", async () => {
    await subscribe("/meta", ["whatsapp.message.received", "whatsapp.conversation.created"]);
    const message = textMessage("447700900123", "Hola from Meta");
    const body = metaPayload("unregistered-pn", [message]);
    const res = await postMeta(body, signature(body));
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as any).data, { received: 1, duplicates: 0 });
    const conversation = (await conversations()).find((c) => c.phone_number === "+447700900123");
    assert.ok(conversation, "stored in the default project");
    assert.equal(conversation.phone_number_id, "unregistered-pn");
    assert.equal(conversation.contact_name, "Ada");
    const [stored] = await messagesOf(conversation.id);
    assert.equal(stored.id, message.id);
    assert.equal(stored.content, "Hola from Meta");
    const [created, received] = await receiver.waitFor("/meta", 2);
    assert.equal(created.headers["x-webhook-event"], "whatsapp.conversation.created");
    const payload = JSON.parse(received.body);
    assert.equal(payload.message.id, message.id);
    assert.equal(payload.message.phone_number, "+447700900123");
    assert.equal(payload.message.text.body, "Hola from Meta");
    assert.equal(payload.message.kapso.origin, "cloud_api");
    assert.equal(payload.conversation.id, conversation.id);
    assert.equal(payload.is_new_conversation, true);
    assert.equal(payload.phone_number_id, "unregistered-pn");
  });

  it("a bad or missing signature is refused and nothing is stored", async () => {
    const before = await conversations();
    const deliveriesBefore = receiver.received.length;
    const body = metaPayload("unregistered-pn", [textMessage("447700900999", "forged")]);
    assert.equal((await postMeta(body)).status, 401);
    assert.equal((await postMeta(body, signature(body, "wrong-secret"))).status, 401);
    assert.equal((await postMeta(body, "sha256=zz")).status, 401);
    const tampered = body.replace("forged", "forgeD");
    assert.equal((await postMeta(tampered, signature(body))).status, 401);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await conversations(), before);
    assert.equal(receiver.received.length, deliveriesBefore);
  });

  it("a message Meta sends again is acknowledged and ignored", async () => {
    await subscribe("/dupes", ["whatsapp.message.received"]);
    const message = textMessage("447700900555", "only once");
    const body = metaPayload("unregistered-pn", [message, message]);
    const first = await postMeta(body, signature(body));
    assert.deepEqual(((await first.json()) as any).data, { received: 1, duplicates: 1 });
    const again = await postMeta(body, signature(body));
    assert.equal(again.status, 200);
    assert.deepEqual(((await again.json()) as any).data, { received: 0, duplicates: 2 });
    const conversation = (await conversations()).find((c) => c.phone_number === "+447700900555");
    assert.equal((await messagesOf(conversation.id)).length, 1);
    await receiver.waitFor("/dupes", 1);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(receiver.at("/dupes").length, 1);
  });

  it("malformed bodies with a good signature are refused or ignored, never a 5xx", async () => {
    for (const body of [
      "not json",
      "[]",
      "{}",
      '{"object":"page"}',
      '{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"x"},"messages":[{"id":5}]}}]}]}',
    ]) {
      const res = await postMeta(body, signature(body));
      assert.ok(res.status === 200 || res.status === 400, `${body} → ${res.status}`);
    }
  });
});

describe("phone numbers and the simulator", () => {
  it("a phone_number_id belongs to one project at most; its messages go to that project", async () => {
    const register = (key: string, id: string) =>
      server.call(
        "POST",
        "/whatsapp/phone_numbers",
        { phone_number: { phone_number_id: id, display_phone_number: "+15550009999" } },
        { "x-api-key": key },
      );
    const created = await register(other.key, "pn-other");
    assert.equal(created.status, 201);
    assert.equal(((await created.json()) as any).data.project_id, other.id);
    assert.equal((await register(other.key, "pn-other")).status, 200);
    assert.equal((await register(server.key, "pn-other")).status, 409);
    assert.equal((await register(server.key, "bad id!")).status, 400);
    const sim = await server.call("POST", "/whatsapp/simulate", {
      phone_number: "+15551110000",
      text: "x",
      phone_number_id: "pn-other",
    });
    assert.equal(sim.status, 409);

    const body = metaPayload("pn-other", [textMessage("15552223333", "to the other project")]);
    assert.equal((await postMeta(body, signature(body))).status, 200);
    const mine = (await conversations(other.key)).find((c) => c.phone_number === "+15552223333");
    assert.ok(mine);
    assert.ok(!(await conversations()).some((c) => c.phone_number === "+15552223333"));
  });

  it("simulate answers 202 with ids and validates its input", async () => {
    const res = await server.call("POST", "/whatsapp/simulate", {
      phone_number: "+1 (555) 010-2030",
      text: "hi",
    });
    assert.equal(res.status, 202);
    const { data } = (await res.json()) as any;
    assert.match(data.message_id, /^wamid\./);
    const conversation = (await conversations()).find((c) => c.id === data.conversation_id);
    assert.equal(conversation.phone_number, "+15550102030");
    assert.equal(conversation.phone_number_id, "simulator");
    for (const bad of [
      { phone_number: "abc", text: "hi" },
      { phone_number: "+1555", text: "" },
      { phone_number: "+15550102030" },
      { phone_number: "+15550102030", text: "hi", extra: 1 },
    ]) {
      const r = await server.call("POST", "/whatsapp/simulate", bad);
      assert.equal(r.status, 400, JSON.stringify(bad));
    }
    assert.equal(
      (await fetch(`${server.api}/whatsapp/simulate`, { method: "POST", body: "{}" })).status,
      401,
    );
  });

  it("workerbase whatsapp simulate injects a message", async () => {
    const command = whatsappCommands.find((c) => c.name === "whatsapp simulate")!;
    const argv = ["--phone", "+15556667777", "--text", "from the cli", "--url", server.url];
    const printed: unknown[] = [];
    const json = out.json;
    out.json = (value) => void printed.push(value);
    try {
      await command.run(
        parseArgs([...argv, "--api-key", server.key, "--json"], command.flags, command.name),
      );
    } finally {
      out.json = json;
    }
    const { data } = printed[0] as any;
    const [message] = await messagesOf(data.conversation_id);
    assert.equal(message.id, data.message_id);
    assert.equal(message.content, "from the cli");
    await assert.rejects(
      command.run(
        parseArgs([...argv.slice(2), "--api-key", server.key], command.flags, command.name),
      ),
      /--phone is required/,
    );
  });

  it("a flood of inbound messages is queued, not dropped, and delivered in order", async () => {
    await subscribe("/flood", ["whatsapp.message.received"], other.key);
    const texts = Array.from({ length: 60 }, (_, i) => `m${i}`);
    const answers = await Promise.all(
      texts.map((text) =>
        server.call(
          "POST",
          "/whatsapp/simulate",
          { phone_number: "+15553334444", text },
          { "x-api-key": other.key },
        ),
      ),
    );
    assert.ok(answers.every((r) => r.status === 202));
    const ids = await Promise.all(answers.map(async (r) => ((await r.json()) as any).data));
    const conversationId = ids[0].conversation_id;
    assert.ok(ids.every((d) => d.conversation_id === conversationId));
    const stored = await messagesOf(conversationId, other.key);
    assert.equal(stored.length, 60);
    const got = await receiver.waitFor("/flood", 60, 15_000);
    assert.deepEqual(
      got.map((r) => JSON.parse(r.body).message.id),
      stored.map((m) => m.id),
    );
  });
});

describe("workflows", () => {
  const recorder = `async function handler(request) {
  const body = await request.json();
  const ctx = body.whatsapp_context;
  return Response.json({
    vars: { seen: {
      trigger: body.execution_context.system.trigger_type,
      conversation: ctx.conversation.id,
      phone: ctx.conversation.phone_number,
      messages: ctx.messages.map((m) => m.content),
      answer: body.execution_context.vars.answer,
    } },
  });
}`;

  it("an inbound message resumes the conversation's waiting execution; events are emitted", async () => {
    const fn = await deployFunction(server, { name: "Recorder", code: recorder });
    await subscribe("/wf", ["workflow.execution.ended", "workflow.execution.failed"]);
    const res = await server.call("POST", "/workflows", {
      workflow: {
        name: "Inbound",
        definition: {
          nodes: [
            { id: "start", data: { node_type: "start", config: {} } },
            {
              id: "ask",
              data: { node_type: "wait_for_response", config: { save_response_to: "answer" } },
            },
            { id: "record", data: { node_type: "function", config: { function_id: fn.id } } },
            { id: "done", data: { node_type: "end", config: {} } },
          ],
          edges: [
            { source: "start", target: "ask", label: "next" },
            { source: "ask", target: "record", label: "next" },
            { source: "record", target: "done", label: "next" },
          ],
        },
        triggers: [{ type: "inbound_message", phone_number_id: "pn-flow" }],
      },
    });
    assert.equal(res.status, 201, await res.clone().text());
    const workflow = ((await res.json()) as any).data;
    const executions = async () =>
      ((await (await server.call("GET", `/workflows/${workflow.id}/executions`)).json()) as any)
        .data;

    const say = async (text: string) => {
      const r = await server.call("POST", "/whatsapp/simulate", {
        phone_number: "+15557770000",
        text,
        phone_number_id: "pn-flow",
      });
      assert.equal(r.status, 202);
      return ((await r.json()) as any).data;
    };
    const first = await say("hello");
    const [waiting] = await eventually(async () => {
      const list = await executions();
      return list.length === 1 && list[0].status === "waiting" ? list : undefined;
    });
    assert.equal(waiting.system.trigger_type, "inbound_message");

    await say("my answer");
    const ended = await eventually(async () => {
      const list = await executions();
      return list.length === 1 && list[0].status === "ended" ? list[0] : undefined;
    }, 10_000);
    assert.equal(ended.id, waiting.id, "the waiting execution resumed; none new started");
    assert.equal(ended.vars.answer, "my answer");
    assert.equal(ended.vars.last_user_input, "my answer");
    assert.deepEqual(ended.vars.seen, {
      trigger: "inbound_message",
      conversation: first.conversation_id,
      phone: "+15557770000",
      messages: ["hello", "my answer"],
      answer: "my answer",
    });

    const [event] = await receiver.waitFor("/wf", 1);
    assert.equal(event.headers["x-webhook-event"], "workflow.execution.ended");
    const payload = JSON.parse(event.body);
    assert.equal(payload.workflow_execution_id, ended.id);
    assert.equal(payload.workflow_id, workflow.id);
    assert.equal(payload.status, "ended");
    assert.equal(payload.whatsapp_conversation_id, first.conversation_id);
  });

  it("whatsapp_context holds at most the last 50 messages, oldest first", async () => {
    const messages = Array.from({ length: 55 }, (_, i) => textMessage("15558880000", `c${i}`));
    const body = metaPayload("pn-cap", messages);
    const stored = await postMeta(body, signature(body));
    assert.deepEqual(((await stored.json()) as any).data, { received: 55, duplicates: 0 });
    await new Promise((r) => setTimeout(r, 1000)); // let those go by before a workflow listens
    const fn = await deployFunction(server, { name: "Cap recorder", code: recorder });
    const res = await server.call("POST", "/workflows", {
      workflow: {
        name: "Cap",
        definition: {
          nodes: [
            { id: "start", data: { node_type: "start", config: {} } },
            { id: "record", data: { node_type: "function", config: { function_id: fn.id } } },
          ],
          edges: [{ source: "start", target: "record", label: "next" }],
        },
        triggers: [{ type: "inbound_message", phone_number_id: "pn-cap" }],
      },
    });
    const workflow = ((await res.json()) as any).data;
    const more = metaPayload("pn-cap", [textMessage("15558880000", "the latest")]);
    assert.equal((await postMeta(more, signature(more))).status, 200);
    const ended = await eventually(async () => {
      const r = await server.call("GET", `/workflows/${workflow.id}/executions`);
      const list = ((await r.json()) as any).data;
      return list.find(
        (e: any) => e.status === "ended" && e.vars.seen?.messages.at(-1) === "the latest",
      );
    }, 10_000);
    const seen = ended.vars.seen.messages;
    assert.equal(seen.length, 50);
    assert.deepEqual(seen, [...messages.slice(6).map((m) => m.text.body), "the latest"]);
  });
});
