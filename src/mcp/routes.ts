import { Hono } from "hono";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { AppError } from "../http/errors.js";
import { clientOf, type KeyGuard } from "../http/keyguard.js";
import type { RateLimiter } from "../http/ratelimit.js";
import type { ProjectService } from "../projects/service.js";
import type { FunctionService } from "../functions/service.js";
import type { Invoker } from "../functions/invoke.js";
import { AgentTools } from "./tools.js";

export interface McpDeps {
  projects: ProjectService;
  rateLimiter: RateLimiter;
  /** Counts wrong keys per client address. */
  keyGuard: KeyGuard;
  functions: FunctionService;
  invoker: Invoker;
  publicUrl: string;
}

/** The project key from `X-API-Key` or `Authorization: Bearer`. */
function presentedKey(request: Request): string | undefined {
  const key = request.headers.get("x-api-key");
  if (key) return key;
  const auth = /^Bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "");
  return auth?.[1];
}

/**
 * A fresh MCP server for one project. The low-level `Server` is used on purpose: the tools are
 * defined at run time by JSON Schemas stored with each function, which McpServer (built for
 * zod-typed tools) cannot register.
 */
function serverFor(projectId: string, tools: AgentTools): Server {
  const server = new Server(
    { name: "workerbase", version: "0.1.0" },
    { capabilities: { tools: {} } },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: await tools.list(projectId),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request) =>
    tools.call(projectId, request.params.name, request.params.arguments ?? {}),
  );
  return server;
}

/**
 * `POST /mcp`: Streamable HTTP in stateless mode (a new server and transport per request, so
 * any host can answer any request), JSON answers rather than SSE streams.
 */
export function mcpRoutes({
  projects,
  rateLimiter,
  keyGuard,
  functions,
  invoker,
  publicUrl,
}: McpDeps) {
  const tools = new AgentTools(functions, invoker, publicUrl);
  const app = new Hono();
  app.post("/", async (c) => {
    const identity = await keyGuard.verify(clientOf(c), presentedKey(c.req.raw), (key) =>
      projects.authenticate(key),
    );
    if (!identity) throw new AppError("UNAUTHORIZED");
    const limited = rateLimiter.check(identity.keyId);
    if (limited) throw new AppError("RATE_LIMITED", limited.message, undefined, limited.headers);
    const server = serverFor(identity.projectId, tools);
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    await server.connect(transport);
    try {
      return await transport.handleRequest(c.req.raw);
    } finally {
      void server.close();
    }
  });
  // Stateless: no server-initiated stream to open and no session to end.
  app.on(["GET", "DELETE"], "/", (c) =>
    c.json(
      {
        jsonrpc: "2.0",
        error: { code: -32000, message: "Method not allowed: use POST" },
        id: null,
      },
      405,
      { allow: "POST" },
    ),
  );
  return app;
}
