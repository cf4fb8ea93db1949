import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";
import {
  deployFunction,
  eventually,
  root,
  startServer,
  type TestServer,
} from "../helpers/server.js";

const weatherSchema = {
  type: "object",
  properties: { city: { type: "string" }, days: { type: "integer", minimum: 1 } },
  required: ["city"],
};

// Answers with the forecast and the envelope it received, so the test can check its shape.
const weather = `async function handler(request) {
  const envelope = await request.json();
  return Response.json({ forecast: "sunny in " + envelope.input.city, envelope });
}`;

let server: TestServer;
let weatherFn: any;

async function connect(headers: Record<string, string> = { "x-api-key": server.key }) {
  const client = new Client({ name: "workerbase-test", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), { requestInit: { headers } }),
  );
  return client;
}

function text(result: any): string {
  return result.content[0].text;
}

before(async () => {
  server = await startServer();
  const tool = (name: string, schema: object = { type: "object" }) => ({
    name,
    description: `The ${name} tool`,
    input_schema: schema,
  });
  [weatherFn] = await Promise.all([
    deployFunction(server, {
      name: "weather",
      code: weather,
      tool: tool("get_weather", weatherSchema),
    }),
    deployFunction(server, {
      name: "broken",
      code: `async function handler() { throw new Error("the tool broke"); }`,
      tool: tool("broken"),
    }),
    deployFunction(server, {
      name: "refuses",
      code: `async function handler() { return new Response("no such city", { status: 404 }); }`,
      tool: tool("refuses"),
    }),
    deployFunction(server, {
      name: "plain",
      code: `async function handler() { return new Response("x"); }`,
    }),
  ]);
  // A draft (never deployed) with a tool is not offered.
  const draft = await server.call("POST", "/functions", {
    function: { name: "draft", code: weather, tool: tool("drafty") },
  });
  assert.equal(draft.status, 201);
});
after(async () => {
  await server.stop();
});

describe("MCP over Streamable HTTP", () => {
  it("tools/list shows the project's deployed functions that offer a tool, with their schemas", async () => {
    const client = await connect();
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), ["broken", "get_weather", "refuses"]);
      const w = tools.find((t) => t.name === "get_weather")!;
      assert.equal(w.description, "The get_weather tool");
      assert.deepEqual(w.inputSchema, weatherSchema);
    } finally {
      await client.close();
    }
  });

  it("tools/call runs the function with the agent-tool envelope and returns its body as text", async () => {
    const client = await connect({ authorization: `Bearer ${server.key}` });
    try {
      const result = await client.callTool({ name: "get_weather", arguments: { city: "Oslo" } });
      assert.ok(!result.isError);
      const body = JSON.parse(text(result));
      assert.equal(body.forecast, "sunny in Oslo");
      const { envelope } = body;
      assert.deepEqual(Object.keys(envelope).sort(), [
        "execution_context",
        "flow_events",
        "flow_info",
        "input",
      ]);
      assert.deepEqual(envelope.input, { city: "Oslo" });
      assert.equal(envelope.flow_info, null);
      assert.deepEqual(envelope.flow_events, []);
      const ctx = envelope.execution_context;
      assert.deepEqual([ctx.vars, ctx.context, ctx.metadata], [{}, {}, {}]);
      assert.equal(ctx.system.trigger_type, "agent_tool");
      const records = await eventually(async () => {
        const res = await server.call("GET", `/functions/${weatherFn.id}/invocations`);
        const list = ((await res.json()) as any).data;
        return list.length > 0 ? list : undefined;
      });
      assert.equal(records[0].trigger, "agent_tool");
    } finally {
      await client.close();
    }
  });

  it("arguments that break the input schema are a tool error naming the field", async () => {
    const client = await connect();
    try {
      const missing = await client.callTool({ name: "get_weather", arguments: {} });
      assert.equal(missing.isError, true);
      assert.match(text(missing), /city is required/);
      const wrong = await client.callTool({
        name: "get_weather",
        arguments: { city: "Oslo", days: 0 },
      });
      assert.equal(wrong.isError, true);
      assert.match(text(wrong), /days must be >= 1/);
    } finally {
      await client.close();
    }
  });

  it("a function that throws or answers non-2xx is a tool error with its message", async () => {
    const client = await connect();
    try {
      const thrown = await client.callTool({ name: "broken", arguments: {} });
      assert.equal(thrown.isError, true);
      assert.match(text(thrown), /the tool broke/);
      const refused = await client.callTool({ name: "refuses", arguments: {} });
      assert.equal(refused.isError, true);
      assert.match(text(refused), /no such city/);
    } finally {
      await client.close();
    }
  });

  it("an unknown tool is a protocol error -32602", async () => {
    const client = await connect();
    try {
      await assert.rejects(
        client.callTool({ name: "drafty", arguments: {} }),
        (err: unknown) => err instanceof McpError && err.code === ErrorCode.InvalidParams,
      );
    } finally {
      await client.close();
    }
  });

  it("without a valid key the endpoint answers 401; another project's key sees no tools", async () => {
    const anonymous = await fetch(`${server.url}/mcp`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    assert.equal(anonymous.status, 401);
    const created = await fetch(`${server.url}/admin/v1/projects`, {
      method: "POST",
      headers: { "x-admin-key": server.adminKey, "content-type": "application/json" },
      body: JSON.stringify({ project: { name: "elsewhere" } }),
    });
    const other = ((await created.json()) as any).data.api_key;
    const client = await connect({ "x-api-key": other });
    try {
      assert.deepEqual((await client.listTools()).tools, []);
      await assert.rejects(
        client.callTool({ name: "get_weather", arguments: { city: "Oslo" } }),
        (err: unknown) => err instanceof McpError && err.code === ErrorCode.InvalidParams,
      );
    } finally {
      await client.close();
    }
  });

  it("workerbase mcp bridges stdio to the server", async () => {
    const bridge = path.join(root, "dist", "cli", "mcp.js");
    const script = `import { mcpBridge } from ${JSON.stringify(bridge)};
process.exitCode = await mcpBridge({ positionals: [], flags: { url: ${JSON.stringify(server.url)}, "api-key": ${JSON.stringify(server.key)} } });`;
    const client = new Client({ name: "workerbase-test", version: "1.0.0" });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: ["--input-type=module", "-e", script],
        stderr: "pipe",
      }),
    );
    try {
      const { tools } = await client.listTools();
      assert.ok(tools.some((t) => t.name === "get_weather"));
      const result = await client.callTool({ name: "get_weather", arguments: { city: "Lima" } });
      assert.equal(JSON.parse(text(result)).forecast, "sunny in Lima");
      await assert.rejects(
        client.callTool({ name: "nope", arguments: {} }),
        (err: unknown) => err instanceof McpError && err.code === ErrorCode.InvalidParams,
      );
    } finally {
      await client.close();
    }
  });
});
