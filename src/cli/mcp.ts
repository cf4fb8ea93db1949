import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { ParsedArgs } from "./args.js";
import type { Command } from "./command.js";
import { apiKey, serverUrl } from "./http.js";

function isRequest(
  m: JSONRPCMessage,
): m is JSONRPCMessage & { id: string | number; method: string } {
  return "method" in m && "id" in m && m.id !== undefined;
}

/**
 * `workerbase mcp`: a stdio ↔ Streamable HTTP bridge, so an MCP client that starts local
 * processes (Claude Desktop, IDEs) reaches the tools of a running server's project. Messages
 * pass through unchanged; a request the server cannot be reached for is answered with a
 * JSON-RPC error. Resolves with the exit code once stdin closes.
 */
export async function mcpBridge(args: ParsedArgs): Promise<number> {
  const url = new URL(`${serverUrl(args)}/mcp`);
  const key = apiKey(args);
  // Loaded here, not at the top: every other command starts without the MCP SDK.
  const { StdioServerTransport } = await import("@modelcontextprotocol/sdk/server/stdio.js");
  const { StreamableHTTPClientTransport } =
    await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
  const remote = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: { "x-api-key": key.value } },
  });
  const local = new StdioServerTransport();
  const initializing = new Set<string | number>();
  const warn = (text: string) => process.stderr.write(`workerbase mcp: ${text}\n`);

  local.onmessage = (message) => {
    if (isRequest(message) && message.method === "initialize") initializing.add(message.id);
    remote.send(message).catch((err: Error) => {
      const reason = `${url.origin} could not be reached or refused the call (key from ${key.source}): ${err.message}`;
      if (isRequest(message))
        void local.send({
          jsonrpc: "2.0",
          id: message.id,
          error: { code: -32000, message: reason },
        });
      else warn(reason);
    });
  };
  remote.onmessage = (message) => {
    if (
      "id" in message &&
      initializing.delete(message.id as string | number) &&
      "result" in message
    ) {
      const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
      if (typeof version === "string") remote.setProtocolVersion(version);
    }
    void local.send(message);
  };
  remote.onerror = (err) => warn(err.message);
  local.onerror = (err) => warn(err.message);

  const closed = new Promise<void>((resolve) => {
    local.onclose = resolve;
    process.stdin.once("end", resolve);
    process.stdin.once("close", resolve);
  });
  await remote.start();
  await local.start();
  await closed;
  await local.close();
  await remote.close();
  return 0;
}

/** The command to register in main.ts: `workerbase mcp`. */
export const mcpCommand: Command = {
  name: "mcp",
  usage: "",
  summary: "serve the project's tools over MCP on stdio (a bridge to the server's /mcp)",
  args: [0, 0],
  flags: {},
  run: mcpBridge,
};
