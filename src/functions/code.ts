import { builtinModules } from "node:module";
import { parse } from "acorn";
import type { Node } from "acorn";

/** The name the user's module has inside the runtime; errors point at it. */
export const moduleName = "function.js";

export type CodeCheck =
  | { ok: true; module: string }
  | { ok: false; error: string; parsed: boolean; loc?: { line: number; column: number } };

/** Both shapes Workerbase accepts, for every sentence that refuses code. */
export const acceptedShapes =
  "write either a top-level `async function handler(request, env, ctx) { ... }` that returns a Response (and optionally `async function scheduled(event, env, ctx)`), or Workers module syntax: `export default { async fetch(request, env, ctx) { ... } }` (optionally with `scheduled(controller, env, ctx)`)";

/** The top-level functions Workerbase calls: `handler` per request, `scheduled` per tick. */
const entrypoints = ["handler", "scheduled"];

type AnyNode = Node & Record<string, any>; // acorn's node union is loose; fields checked where read

/** The property names of an object literal (`{ fetch() {}, "scheduled": ... }`), or null. */
function literalKeys(node: AnyNode): string[] | null {
  if (node.type !== "ObjectExpression") return null;
  const keys: string[] = [];
  for (const prop of node.properties as AnyNode[]) {
    if (prop.type === "SpreadElement") return null; // unknown keys: the probe decides
    if (prop.computed) continue;
    if (prop.key.type === "Identifier") keys.push(prop.key.name);
    else if (prop.key.type === "Literal") keys.push(String(prop.key.value));
  }
  return keys;
}

/**
 * Checks the shape of a function's code before it reaches the runtime and returns the module
 * to load. Two shapes are accepted (CONTRACT 3.3): the hosted original's top-level `handler`
 * (and `scheduled`), to which `export { ... }` is added for those not exported yet; and
 * Workers module syntax, an `export default` object with `fetch` and/or `scheduled`, loaded
 * as written. An object literal is checked here; any other default export (an app object
 * built in the file) is checked by the deploy's probe in the runtime. Code the parser
 * rejects is still sent to the runtime, whose syntax error is the one reported.
 */
export function prepareModule(code: string): CodeCheck {
  let program: ReturnType<typeof parse>;
  try {
    program = parse(code, { ecmaVersion: "latest", sourceType: "module", locations: true });
  } catch (err) {
    const loc = (err as { loc?: { line: number; column: number } }).loc;
    return {
      ok: false,
      error: (err as Error).message,
      parsed: false,
      loc: loc && { line: loc.line, column: loc.column + 1 },
    };
  }
  const declared = new Set<string>();
  const exported = new Set<string>();
  let hasDefault = false;
  for (const node of program.body as Node[]) {
    const n = node as AnyNode;
    if (n.type === "ExportDefaultDeclaration") {
      hasDefault = true;
      const keys = literalKeys(n.declaration);
      if (keys && !keys.includes("fetch") && !keys.includes("scheduled")) {
        return {
          ok: false,
          parsed: true,
          error: `The object exported as default (line ${n.loc?.start.line}) has neither \`fetch\` nor \`scheduled\`: ${acceptedShapes}`,
        };
      }
      continue;
    }
    const decl = n.type === "ExportNamedDeclaration" ? n.declaration : n;
    if (n.type === "ExportNamedDeclaration") {
      for (const spec of n.specifiers ?? []) {
        const name = spec.exported.type === "Identifier" ? spec.exported.name : spec.exported.value;
        if (entrypoints.includes(name)) exported.add(name);
        if (name === "default") hasDefault = true;
      }
    }
    if (!decl) continue;
    const names: string[] =
      decl.type === "FunctionDeclaration" || decl.type === "ClassDeclaration"
        ? [decl.id?.name]
        : decl.type === "VariableDeclaration"
          ? decl.declarations.map((d: any) => (d.id.type === "Identifier" ? d.id.name : undefined))
          : [];
    for (const name of entrypoints) {
      if (!names.includes(name)) continue;
      declared.add(name);
      if (n.type === "ExportNamedDeclaration") exported.add(name);
    }
  }
  // Module syntax: the default export is what runs; the probe checks what it holds.
  if (hasDefault) return { ok: true, module: code };
  if (declared.size === 0 && exported.size === 0) {
    return {
      ok: false,
      parsed: true,
      error: `No top-level \`handler\` (or \`scheduled\`) and no \`export default\` was found: ${acceptedShapes}`,
    };
  }
  const missing = [...declared].filter((name) => !exported.has(name));
  return {
    ok: true,
    module: missing.length === 0 ? code : `${code}\nexport { ${missing.join(", ")} };\n`,
  };
}

/**
 * Turns workerd's "Failed to start Worker" text into a sentence with line and column; when
 * workerd gives no location, the parser's (`fallback`) is used.
 */
export function describeLoadError(
  message: string,
  fallback?: { line: number; column: number },
): string {
  const located = /Uncaught ([^\n]*)\n\s*at function\.(?:js|ts):(\d+):(\d+)/.exec(message);
  if (located) return `${located[1]} at line ${located[2]}, column ${located[3]}`;
  const uncaught = /Uncaught ([^\n]*)/.exec(message);
  const text = uncaught ? uncaught[1] : message.replace(/^Failed to start Worker:\s*/, "");
  return fallback ? `${text} at line ${fallback.line}, column ${fallback.column}` : text;
}

/** How to turn a function with npm imports into the one file Workerbase runs. */
export const bundleCommand =
  "npx esbuild index.js --bundle --format=esm --platform=browser --external:cloudflare:* --external:node:* --outfile=bundle.js";

/**
 * Why the code's imports cannot run, or null. A function is one file: `cloudflare:*` modules
 * work, `node:*` ones with the `nodejs_compat` flag; anything else (an npm package, another
 * file) is refused with a sentence naming it and saying how to bundle it. Code that does not
 * parse is left to the deploy, whose syntax error is the one reported.
 */
export function importProblem(
  code: string,
  compatibilityFlags: readonly string[] = [],
): string | null {
  let program: ReturnType<typeof parse>;
  try {
    program = parse(code, { ecmaVersion: "latest", sourceType: "module", locations: true });
  } catch {
    return null;
  }
  const sources: { name: string; line: number }[] = [];
  const visit = (node: unknown): void => {
    if (!node || typeof node !== "object") return;
    if (Array.isArray(node)) return node.forEach(visit);
    const n = node as AnyNode;
    if (
      (n.type === "ImportDeclaration" ||
        n.type === "ExportAllDeclaration" ||
        (n.type === "ExportNamedDeclaration" && n.source) ||
        n.type === "ImportExpression") &&
      n.source?.type === "Literal" &&
      typeof n.source.value === "string"
    ) {
      sources.push({ name: n.source.value, line: n.loc?.start.line ?? 1 });
    }
    for (const key of Object.keys(n)) if (key !== "loc") visit(n[key]);
  };
  visit(program.body);
  const compat = compatibilityFlags.includes("nodejs_compat");
  for (const { name, line } of sources) {
    if (name.startsWith("cloudflare:")) continue;
    if (name.startsWith("node:")) {
      if (compat) continue;
      return `The code imports "${name}" (line ${line}), a Node.js module: add "nodejs_compat" to runtime_config.compatibility_flags to use it`;
    }
    if (builtinModules.includes(name))
      return `The code imports "${name}" (line ${line}): Node.js modules are imported as "node:${name}", with "nodejs_compat" in runtime_config.compatibility_flags`;
    return `The code imports "${name}" (line ${line}), but a function is one file: bundle it with its imports first, for example \`${bundleCommand}\` (export \`handler\` or use \`export default\`, so the bundler keeps it), and deploy bundle.js`;
  }
  return null;
}
