import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import _addFormats from "ajv-formats";
import {
  ErrorCode,
  McpError,
  type CallToolResult,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import type { FunctionService } from "../functions/service.js";
import type { FunctionRow } from "../functions/store.js";
import type { Invoker } from "../functions/invoke.js";
import { defaults } from "../host/config.js";
import { tooDeep } from "../http/validate.js";

interface ToolDefinition {
  name: string;
  description: string;
  input_schema: Record<string, unknown>;
}

// ajv-formats is CommonJS; its default export arrives as the plugin function at run time.
const addFormats = _addFormats as unknown as (ajv: Ajv) => Ajv;

const maxErrorChars = 512;

function toolOf(row: FunctionRow): ToolDefinition | null {
  return row.tool && row.live_deployment_id ? (JSON.parse(row.tool) as ToolDefinition) : null;
}

/** "city must be string", "city is required": the first argument that broke the schema. */
function describe(error: ErrorObject): string {
  const path = error.instancePath.split("/").slice(1).join(".");
  if (error.keyword === "required") {
    const missing = (error.params as { missingProperty: string }).missingProperty;
    return `${path ? `${path}.` : ""}${missing} is required`;
  }
  if (error.keyword === "additionalProperties") {
    const extra = (error.params as { additionalProperty: string }).additionalProperty;
    return `${path ? `${path}.` : ""}${extra} is not allowed`;
  }
  return `${path || "(arguments)"} ${error.message ?? "is invalid"}`;
}

/**
 * Deployed functions with a `tool` definition, offered to agents (§7): listing, argument
 * validation against `input_schema`, and calls with the agent-tool envelope (§5.3).
 */
export class AgentTools {
  // One validator per distinct schema text. `$id` and `$schema` are dropped before compiling,
  // so one project's schema can never be found by another's `$ref`.
  private ajv = addFormats(new Ajv({ strict: false, allErrors: false, validateSchema: false }));
  private validators = new Map<string, ValidateFunction>();

  constructor(
    private functions: FunctionService,
    private invoker: Invoker,
    private publicUrl: string,
  ) {}

  /** The project's deployed functions that offer a tool, as MCP `tools/list` shows them. */
  async list(projectId: string): Promise<Tool[]> {
    const tools: Tool[] = [];
    for (const row of await this.functions.list(projectId)) {
      const tool = toolOf(row);
      if (tool)
        tools.push({
          name: tool.name,
          description: tool.description,
          inputSchema: tool.input_schema as Tool["inputSchema"],
        });
    }
    return tools;
  }

  private validator(schema: Record<string, unknown>): ValidateFunction {
    const key = JSON.stringify(schema);
    let validate = this.validators.get(key);
    if (!validate) {
      const { $id: _id, $schema: _schema, ...rest } = schema;
      validate = this.ajv.compile(rest);
      if (this.validators.size >= 1000)
        this.validators.delete(this.validators.keys().next().value!);
      this.validators.set(key, validate);
    }
    return validate;
  }

  /**
   * Runs the tool `name` with `args`. An unknown tool is a protocol error (-32602); invalid
   * arguments and a failing function are tool errors (`isError: true`).
   */
  async call(
    projectId: string,
    name: string,
    args: Record<string, unknown>,
  ): Promise<CallToolResult> {
    const rows = await this.functions.list(projectId);
    const row = rows.find((r) => toolOf(r)?.name === name);
    const tool = row && toolOf(row);
    if (!row || !tool) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);

    let validate: ValidateFunction;
    try {
      validate = this.validator(tool.input_schema);
    } catch (err) {
      return toolError(`The tool's input_schema cannot be used: ${(err as Error).message}`);
    }
    // Deeper arguments would overflow the stack of the validator or of JSON.stringify.
    const deep = tooDeep(args, defaults.maxJsonDepth);
    if (deep !== null)
      return toolError(
        `Invalid arguments: ${deep} is nested deeper than ${defaults.maxJsonDepth} levels`,
      );
    if (!validate(args)) return toolError(`Invalid arguments: ${describe(validate.errors![0])}`);

    const fn = await this.functions.resolveForInvoke(row.id, projectId);
    if (!fn) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);
    const refused = this.invoker.refusal(fn);
    if (refused) return toolError(`The tool "${name}" cannot run: ${refused.message}`);
    const envelope = {
      input: args,
      execution_context: {
        vars: {},
        system: {
          workflow_id: null,
          workflow_execution_id: null,
          started_at: new Date().toISOString(),
          trigger_type: "agent_tool",
        },
        context: {},
        metadata: {},
      },
      flow_info: null,
      flow_events: [],
    };
    const outcome = await this.invoker.run(fn, {
      url: `${this.publicUrl}/platform/v1/functions/${fn.id}/invoke`,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: Buffer.from(JSON.stringify(envelope)),
      trigger: "agent_tool",
    });
    const result = outcome.result;
    if (result.kind !== "ok") return toolError(result.error ?? "The function failed");
    const text = result.body.toString("utf8");
    if (result.status < 200 || result.status > 299)
      return toolError(text || `The function answered ${result.status}`);
    return { content: [{ type: "text", text }] };
  }
}

function toolError(message: string): CallToolResult {
  const text = message.length > maxErrorChars ? message.slice(0, maxErrorChars) : message;
  return { content: [{ type: "text", text }], isError: true };
}
