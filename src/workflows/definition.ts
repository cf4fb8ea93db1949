import type { z } from "zod";
import { AppError } from "../http/errors.js";
import { headerValueProblem } from "../webhooks/headers.js";
import {
  DefinitionShape,
  nodeConfigs,
  nodeTypes,
  type Definition,
  type NodeType,
} from "./schema.js";

/** One thing wrong with a definition, naming the node (or edge) where it is. */
export interface DefinitionIssue {
  field: string;
  node_id?: string;
  message: string;
}

export interface CompiledNode {
  id: string;
  type: NodeType;
  // The config matching `type`, checked by nodeConfigs[type]; steps narrow it by type.
  config: Record<string, any>;
}

/** A definition ready to run: nodes by id and each node's outgoing edges by label. */
export interface CompiledDefinition {
  nodes: Map<string, CompiledNode>;
  edges: Map<string, Map<string, string>>;
}

/** A function a node names, by id or slug. */
export interface FunctionRef {
  function_id?: string;
  function_slug?: string;
}

/** Issues of a node's config, each naming the config key: `config.variable: Required`. */
function configIssues(error: z.ZodError, prefix: (string | number)[], nodeId: string) {
  return error.issues.map((issue) => ({
    field: [...prefix, ...issue.path].join("."),
    node_id: nodeId,
    message: `${["config", ...issue.path].join(".")}: ${issue.message}`,
  }));
}

/**
 * Checks a definition before it is saved (§5.2): its shape, every node's config, the edges,
 * and that the functions it names exist. Throws a 400 whose details name each bad node.
 */
export async function validateDefinition(
  raw: unknown,
  functionExists: (ref: FunctionRef) => Promise<boolean>,
): Promise<Definition> {
  const shape = DefinitionShape.safeParse(raw);
  if (!shape.success) {
    const nodes = (raw as { nodes?: { id?: unknown }[] } | null)?.nodes;
    const issues = shape.error.issues.map((issue) => {
      const [list, index] = issue.path;
      const id = list === "nodes" && Array.isArray(nodes) ? nodes[index as number]?.id : undefined;
      const field = ["definition", ...issue.path].join(".");
      if (typeof id !== "string") return { field, message: issue.message };
      const within = issue.path.slice(2).join(".");
      return {
        field,
        node_id: id,
        message: within ? `${within}: ${issue.message}` : issue.message,
      };
    });
    throw invalid(issues);
  }
  const def = shape.data;
  const issues: DefinitionIssue[] = [];
  const byId = new Map<string, Definition["nodes"][number]>();
  const configs = new Map<string, Record<string, any>>();

  def.nodes.forEach((node, i) => {
    const at = ["definition", "nodes", i];
    const add = (field: string, message: string) =>
      issues.push({ field: [...at, field].join("."), node_id: node.id, message });
    if (byId.has(node.id)) add("id", "is used by another node too");
    byId.set(node.id, node);
    const type = node.data.node_type;
    if (!nodeTypes.includes(type as NodeType)) {
      add("data.node_type", `unknown node_type "${type}"; expected one of ${nodeTypes.join(", ")}`);
      return;
    }
    if (type === "start" && node.id !== "start")
      add("id", 'the start node must have the id "start"');
    if (node.id === "start" && type !== "start")
      add("data.node_type", 'the node "start" must be of node_type "start"');
    // A function call carries the node id in its X-Idempotency-Key header (steps.ts).
    const idProblem = headerValueProblem(node.id);
    if ((type === "function" || type === "decide") && idProblem)
      add("id", `is sent in the X-Idempotency-Key header of the function call and ${idProblem}`);
    const config = nodeConfigs[type as NodeType].safeParse(node.data.config ?? {});
    if (!config.success)
      issues.push(...configIssues(config.error, [...at, "data", "config"], node.id));
    else configs.set(node.id, config.data as Record<string, any>);
  });
  if (!byId.has("start"))
    issues.push({
      field: "definition.nodes",
      message: 'needs a node with id "start" and node_type "start"',
    });

  const outgoing = new Map<string, string[]>();
  def.edges.forEach((edge, i) => {
    const at = `definition.edges.${i}`;
    const name = `edge ${edge.source} → ${edge.target}`;
    if (!byId.has(edge.source))
      issues.push({ field: `${at}.source`, message: `${name}: "${edge.source}" is not a node` });
    if (!byId.has(edge.target))
      issues.push({
        field: `${at}.target`,
        node_id: edge.source,
        message: `${name}: "${edge.target}" is not a node`,
      });
    const labels = outgoing.get(edge.source) ?? [];
    labels.push(edge.label);
    outgoing.set(edge.source, labels);
  });

  def.nodes.forEach((node, i) => {
    const at = `definition.nodes.${i}`;
    const labels = outgoing.get(node.id) ?? [];
    const type = node.data.node_type;
    const add = (message: string) => issues.push({ field: at, node_id: node.id, message });
    if (type === "decide") {
      const conditions: { label: string }[] = configs.get(node.id)?.conditions ?? [];
      const known = conditions.map((c) => c.label);
      if (new Set(known).size !== known.length) add("condition labels must be unique");
      for (const label of labels)
        if (!known.includes(label))
          add(`has an edge labelled "${label}", which is not one of its conditions`);
      for (const label of known) {
        const count = labels.filter((l) => l === label).length;
        if (count === 0) add(`has no edge for its condition "${label}"`);
        if (count > 1) add(`has ${count} edges labelled "${label}"; expected one`);
      }
    } else if (type === "end" && labels.length > 0) {
      add("an end node has no outgoing edges");
    } else if (labels.length > 1) {
      add(`has ${labels.length} outgoing edges; a ${type} node has at most one, labelled "next"`);
    } else if (labels.length === 1 && labels[0] !== "next") {
      add(
        `its outgoing edge is labelled "${labels[0]}"; a ${type} node's edge must be labelled "next"`,
      );
    }
  });

  // Only look functions up once the definition is otherwise sound.
  if (issues.length === 0) {
    for (const [i, node] of def.nodes.entries()) {
      const type = node.data.node_type;
      if (type !== "function" && type !== "decide") continue;
      const ref = configs.get(node.id) as FunctionRef;
      if (!(await functionExists(ref))) {
        const key = ref.function_id !== undefined ? "function_id" : "function_slug";
        issues.push({
          field: `definition.nodes.${i}.data.config.${key}`,
          node_id: node.id,
          message: `names the function "${ref.function_id ?? ref.function_slug}", which does not exist in this project`,
        });
      }
    }
  }
  if (issues.length > 0) throw invalid(issues);
  return def;
}

function invalid(issues: DefinitionIssue[]): AppError {
  const first = issues[0];
  const error =
    first.node_id !== undefined
      ? `Invalid definition: node "${first.node_id}": ${first.message}`
      : `Invalid ${first.field}: ${first.message}`;
  return new AppError("INVALID_INPUT", error, issues);
}

/** Turns a stored (already validated) definition into lookups for the engine. */
export function compile(def: Definition): CompiledDefinition {
  const nodes = new Map<string, CompiledNode>();
  for (const node of def.nodes)
    nodes.set(node.id, {
      id: node.id,
      type: node.data.node_type as NodeType,
      config: (node.data.config ?? {}) as Record<string, any>,
    });
  const edges = new Map<string, Map<string, string>>();
  for (const edge of def.edges) {
    const out = edges.get(edge.source) ?? new Map<string, string>();
    out.set(edge.label, edge.target);
    edges.set(edge.source, out);
  }
  return { nodes, edges };
}
