// Every 400 of the API in plain words (issue 16), through the real `workerbase serve`: each
// route that takes a body or a query gets empty bodies, missing, wrong-typed, empty, too long
// and unknown fields, and each answer must name a real field and say what it must be, never
// in the schema library's words ("Too small: expected string to have >=1 characters").
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
let functionId: string;
let workflowId: string;
let webhookId: string;

const jargon =
  /Too small|Too big|expected nonoptional|Invalid input|received|>=|<=|Unrecognized key|\(body\)|nonoptional|ZodError|invalid_type/;

/** The unknown field every body case adds. */
const unknown = "nope";

before(async () => {
  server = await startServer();
  const fn = await server.call("POST", "/functions", {
    function: { name: "messages", code: "export default { fetch: () => new Response('ok') }" },
  });
  assert.equal(fn.status, 201, await fn.clone().text());
  functionId = ((await fn.json()) as any).data.id;
  const wf = await server.call("POST", "/workflows", {
    workflow: {
      name: "messages",
      definition: {
        nodes: [
          { id: "start", data: { node_type: "start" } },
          { id: "end", data: { node_type: "end" } },
        ],
        edges: [{ source: "start", target: "end", label: "next" }],
      },
    },
  });
  assert.equal(wf.status, 201, await wf.clone().text());
  workflowId = ((await wf.json()) as any).data.id;
  const hook = await server.call("POST", "/webhooks", {
    webhook: { url: "http://127.0.0.1:9/hook", events: ["workflow.execution.ended"] },
  });
  assert.equal(hook.status, 201, await hook.clone().text());
  webhookId = ((await hook.json()) as any).data.id;
});
after(async () => {
  await server?.stop();
});

interface Answer {
  status: number;
  body: { error: string; details?: { field: string; message: string }[] };
}

/** A platform call (or, with `admin`, an admin one); a string body is sent as it is. */
async function send(method: string, route: string, body?: unknown, admin = false) {
  const res = admin
    ? await fetch(`${server.url}/admin/v1${route}`, {
        method,
        headers: { "x-admin-key": server.adminKey, "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      })
    : await server.call(method, route, body);
  const text = await res.text();
  let parsed: Answer["body"];
  try {
    parsed = JSON.parse(text);
  } catch {
    assert.fail(`${method} ${route}: ${res.status} is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body: parsed } as Answer;
}

/**
 * Checks a 400 reads plainly: a sentence that is "Invalid <field>: ..." or plain words, every
 * detail naming one of `fields` (by its first segment) and none in the schema library's words.
 */
function assertPlain(what: string, answer: Answer, fields: string[]) {
  const { error, details } = answer.body;
  const shown = `${what}: ${JSON.stringify(answer.body)}`;
  assert.equal(typeof error, "string", shown);
  assert.match(error, /^(Invalid [\w.-]+(…)?: \S|[A-Z][a-z]+ )/, shown);
  const named = /^Invalid ([\w.-]+(?:…)?):/.exec(error)?.[1];
  // Past the field's name: a field may be called "input" ("Invalid input: is required").
  assert.doesNotMatch(named ? error.slice(`Invalid ${named}:`.length) : error, jargon, shown);
  if (details === undefined) return;
  assert.ok(Array.isArray(details), shown);
  for (const d of details) {
    assert.equal(typeof d.field, "string", shown);
    assert.equal(typeof d.message, "string", shown);
    assert.ok(d.message.length > 0, shown);
    assert.doesNotMatch(d.message, jargon, shown);
    const head = d.field.split(".")[0];
    assert.ok([...fields, "body", unknown].includes(head), `${shown}\n"${d.field}" is no field`);
  }
  if (named)
    assert.ok(
      details.some((d) => d.field === named),
      `${shown}\nnames no detail`,
    );
}

/** A route that takes a body: its fields with a wrong-typed value, and which may be empty. */
interface BodyRoute {
  method: string;
  route: () => string;
  /** The resource key the attributes are wrapped in (`{"function": {...}}`), if any. */
  wrap?: string;
  /** Each field with a value of the wrong type. */
  fields: Record<string, unknown>;
  /** String fields an empty string is refused for. */
  nonEmpty?: string[];
  /** String fields with their maximum length. */
  maxLength?: Record<string, number>;
  /** A valid body, to which one bad field at a time is added. */
  valid: Record<string, unknown>;
  /** True when an empty body is accepted (deploy, start an execution). */
  optional?: boolean;
  admin?: boolean;
}

const fnFields = {
  name: 5,
  slug: 5,
  description: 5,
  code: 5,
  function_type: 5,
  runtime_config: "fast",
  public_endpoint: "yes",
  invoke_response_mode: 5,
  tool: "x",
  schedules: "x",
};
const workflowFields = { name: 5, slug: 5, definition: "x", triggers: "x" };
const webhookFields = {
  url: 5,
  function_id: 5,
  events: "x",
  secret_key: 5,
  headers: "x",
  active: "yes",
};

const bodyRoutes: BodyRoute[] = [
  {
    method: "POST",
    route: () => "/functions",
    wrap: "function",
    fields: fnFields,
    nonEmpty: ["name"],
    maxLength: { name: 100, slug: 64, description: 2000 },
    valid: { name: "a", code: "x" },
  },
  {
    method: "PATCH",
    route: () => `/functions/${functionId}`,
    wrap: "function",
    fields: fnFields,
    nonEmpty: ["name"],
    maxLength: { name: 100, slug: 64, description: 2000 },
    valid: {},
  },
  {
    method: "POST",
    route: () => `/functions/${functionId}/deploy`,
    fields: { message: 5 },
    maxLength: { message: 1000 },
    valid: {},
    optional: true,
  },
  {
    method: "POST",
    route: () => `/functions/${functionId}/rollback`,
    fields: { version: "x" },
    valid: { version: 1 },
  },
  {
    method: "POST",
    route: () => `/functions/${functionId}/secrets`,
    wrap: "secret",
    fields: { name: 5, type: 5 },
    nonEmpty: ["name"],
    maxLength: { name: 128 },
    valid: { name: "A", value: "x" },
  },
  {
    method: "POST",
    route: () => "/secrets",
    wrap: "secret",
    fields: { name: 5, type: 5 },
    nonEmpty: ["name"],
    maxLength: { name: 128 },
    valid: { name: "A", value: "x" },
  },
  {
    method: "POST",
    route: () => "/database/query",
    fields: { sql: 5, params: "x" },
    nonEmpty: ["sql"],
    valid: { sql: "SELECT 1" },
  },
  {
    method: "POST",
    route: () => "/workflows",
    wrap: "workflow",
    fields: workflowFields,
    nonEmpty: ["name"],
    maxLength: { name: 100, slug: 64 },
    valid: { name: "w" },
  },
  {
    method: "PATCH",
    route: () => `/workflows/${workflowId}`,
    wrap: "workflow",
    fields: workflowFields,
    nonEmpty: ["name"],
    maxLength: { name: 100, slug: 64 },
    valid: {},
  },
  {
    method: "POST",
    route: () => `/workflows/${workflowId}/executions`,
    wrap: "execution",
    fields: { vars: "x", context: 5 },
    valid: {},
    optional: true,
  },
  {
    method: "POST",
    route: () => "/webhooks",
    wrap: "webhook",
    fields: webhookFields,
    nonEmpty: ["function_id", "secret_key"],
    maxLength: { url: 2048, secret_key: 256 },
    valid: { url: "http://127.0.0.1:9/x", events: ["workflow.execution.ended"] },
  },
  {
    method: "PATCH",
    route: () => `/webhooks/${webhookId}`,
    wrap: "webhook",
    fields: webhookFields,
    nonEmpty: ["function_id", "secret_key"],
    maxLength: { url: 2048, secret_key: 256 },
    valid: {},
  },
  {
    method: "POST",
    route: () => "/whatsapp/phone_numbers",
    wrap: "phone_number",
    fields: { phone_number_id: 5, display_phone_number: 5 },
    nonEmpty: ["phone_number_id"],
    maxLength: { display_phone_number: 32 },
    valid: { phone_number_id: "p1" },
  },
  {
    method: "POST",
    route: () => "/whatsapp/simulate",
    fields: { phone_number: 5, text: 5, phone_number_id: 5 },
    nonEmpty: ["text"],
    maxLength: { phone_number: 32, text: 4096 },
    valid: { phone_number: "+15551234567", text: "hi" },
  },
  {
    method: "POST",
    route: () => `/workflow_executions/${crypto.randomUUID()}/resume`,
    fields: { input: 5 },
    maxLength: { input: 64 * 1024 },
    valid: { input: "x" },
  },
  {
    method: "POST",
    route: () => "/projects",
    wrap: "project",
    fields: { name: 5 },
    nonEmpty: ["name"],
    maxLength: { name: 100 },
    valid: { name: "p" },
    admin: true,
  },
];

/** Every bad body for a route, each with a name and whether it must be refused. */
function badBodies(r: BodyRoute): [string, unknown][] {
  const wrapped = (attrs: Record<string, unknown>) => (r.wrap ? { [r.wrap]: attrs } : attrs);
  const with1 = (field: string, value: unknown) => wrapped({ ...r.valid, [field]: value });
  const cases: [string, unknown][] = [
    ["a JSON array", "[]"],
    ["a JSON number", "5"],
    ["JSON null", "null"],
    ["malformed JSON", "{"],
    ["an unknown field", wrapped({ ...r.valid, [unknown]: 1 })],
  ];
  if (!r.optional) cases.push(["an empty body", ""]);
  if (r.wrap) {
    cases.push(["no resource key", {}], [`a string for ${r.wrap}`, { [r.wrap]: "x" }]);
    cases.push([`an array for ${r.wrap}`, { [r.wrap]: [] }]);
  }
  if (Object.keys(r.valid).length > 0) cases.push(["no fields", wrapped({})]);
  for (const [field, value] of Object.entries(r.fields))
    cases.push([`a wrong-typed ${field}`, with1(field, value)]);
  for (const field of r.nonEmpty ?? []) cases.push([`an empty ${field}`, with1(field, "")]);
  for (const [field, max] of Object.entries(r.maxLength ?? {}))
    cases.push([`a too long ${field}`, with1(field, "a".repeat(max + 1))]);
  return cases;
}

describe("validation messages", () => {
  it("every route with a body refuses bad bodies in plain words that name a real field", async () => {
    for (const r of bodyRoutes) {
      const fields = [
        ...Object.keys(r.fields),
        ...Object.keys(r.valid),
        ...(r.wrap ? [r.wrap] : []),
      ];
      for (const [name, body] of badBodies(r)) {
        const what = `${r.method} ${r.route()} with ${name}`;
        const answer = await send(r.method, r.route(), body, r.admin);
        assert.equal(answer.status, 400, `${what}: ${JSON.stringify(answer.body)}`);
        assertPlain(what, answer, fields);
      }
    }
  });

  it("query values are refused in plain words naming the parameter", async () => {
    const queries: [string, string, string][] = [
      ["GET", "/kv/keys?limit=abc", "limit"],
      ["GET", "/kv/keys?limit=0", "limit"],
      ["PUT", "/kv/values/k?expiration_ttl=abc", "expiration_ttl"],
      ["PUT", "/kv/values/k?expiration=1.5", "expiration"],
      ["GET", `/functions/${functionId}/invocations?limit=abc`, "limit"],
      ["GET", `/functions/${functionId}/invocations?status=bogus`, "status"],
      ["GET", `/functions/${functionId}/versions?limit=0`, "limit"],
      ["GET", `/functions/${functionId}/versions?after=x`, "after"],
      ["GET", `/functions/${functionId}/versions/x`, "version"],
      ["GET", `/workflows/${workflowId}/executions?status=bogus`, "status"],
      ["GET", `/workflows/${workflowId}/executions?limit=abc`, "limit"],
      ["GET", "/webhook_deliveries?status=bogus", "status"],
      ["GET", "/webhook_deliveries?limit=abc", "limit"],
      ["GET", "/webhook_deliveries?webhook_id=x", "webhook_id"],
    ];
    for (const [method, route, field] of queries) {
      const answer =
        method === "PUT"
          ? await (async () => {
              const res = await server.call(method, route, "value", {
                "content-type": "application/octet-stream",
              });
              return { status: res.status, body: (await res.json()) as Answer["body"] };
            })()
          : await send(method, route);
      assert.equal(answer.status, 400, `${method} ${route}: ${JSON.stringify(answer.body)}`);
      assertPlain(`${method} ${route}`, answer, [field]);
      assert.ok(
        answer.body.details?.some((d) => d.field === field),
        `${route}: ${JSON.stringify(answer.body)}`,
      );
    }
  });

  it("says what each field must be, in the words of the issue", async () => {
    const fn = (attrs: Record<string, unknown>) =>
      send("POST", "/functions", { function: { name: "a", code: "x", ...attrs } });
    const expect = async (answer: Promise<Answer>, error: string, detail?: [string, string]) => {
      const { status, body } = await answer;
      assert.equal(status, 400, JSON.stringify(body));
      assert.equal(body.error, error, JSON.stringify(body));
      if (detail)
        assert.ok(
          body.details?.some((d) => d.field === detail[0] && d.message === detail[1]),
          JSON.stringify(body),
        );
    };
    await expect(fn({ name: "" }), "Invalid name: must not be empty", [
      "name",
      "must not be empty",
    ]);
    await expect(fn({ name: "   " }), "Invalid name: must not be empty");
    await expect(fn({ name: 5 }), "Invalid name: must be a string, not a number");
    await expect(fn({ name: "a".repeat(101) }), "Invalid name: must be at most 100 characters");
    await expect(
      fn({ runtime_config: { timeout: 0 } }),
      "Invalid runtime_config.timeout: must be a whole number from 1 to 300",
    );
    await expect(
      fn({ runtime_config: { timeout: 1.5 } }),
      "Invalid runtime_config.timeout: must be a whole number from 1 to 300",
    );
    await expect(
      fn({ runtime_config: { memory: "big" } }),
      "Invalid runtime_config.memory: must be a whole number from 16 to 1024, not a string",
    );
    await expect(
      fn({ runtime_config: { colour: "red" } }),
      'Invalid runtime_config.colour: unknown field "colour"',
    );
    await expect(fn({ [unknown]: 1 }), `Invalid ${unknown}: unknown field "${unknown}"`, [
      unknown,
      `unknown field "${unknown}"`,
    ]);
    await expect(
      fn({ invoke_response_mode: "x" }),
      "Invalid invoke_response_mode: must be one of: passthrough, wrapped",
    );
    await expect(
      fn({ runtime_config: { compatibility_flags: ["nodejs_compat", "nodejs_compat"] } }),
      "Invalid runtime_config.compatibility_flags: must have at most 1 entry",
    );
    await expect(
      fn({ public_endpoint: "yes" }),
      "Invalid public_endpoint: must be true or false, not a string",
    );
    await expect(
      send("POST", "/functions", { function: { name: "a" } }),
      "Invalid code: is required",
      ["code", "is required"],
    );
    await expect(
      send("POST", "/functions", { function: "x" }),
      "Invalid function: must be a JSON object, not a string",
    );
    await expect(
      send("POST", "/functions", { name: "a" }),
      'Expected a JSON object with a "function" key',
      ["function", "is required"],
    );
    await expect(
      send("POST", "/database/query", { sql: "SELECT ?", params: [{}] }),
      "Invalid params.0: must be a string, a number, true or false, null or an array, not an object",
    );
    await expect(
      send("POST", "/database/query", { sql: "SELECT ?", params: [[256]] }),
      "Invalid params.0.0: must be a whole number from 0 to 255",
    );
    await expect(
      send("POST", "/database/query", []),
      "Invalid body: must be a JSON object, not an array",
    );
    await expect(send("POST", "/secrets", { secret: { name: "A" } }), "Invalid value: is required");
    await expect(
      send("GET", "/kv/keys?limit=abc"),
      "Invalid limit: must be a whole number from 1 to 1000",
    );
  });
});
