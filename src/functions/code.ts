import { parse } from "acorn";
import type { Node } from "acorn";

/** The name the user's module has inside the runtime; errors point at it. */
export const moduleName = "function.js";

export type CodeCheck =
  | { ok: true; module: string }
  | { ok: false; error: string; parsed: boolean; loc?: { line: number; column: number } };

const howTo =
  "define a top-level `async function handler(request, env) { ... }` that returns a Response, or `async function scheduled(event, env) { ... }` for a function that runs only on schedule";

/** The top-level functions Workerbase calls: `handler` per request, `scheduled` per tick. */
const entrypoints = ["handler", "scheduled"];

/**
 * Checks the shape of a function's code before it reaches the runtime and returns the module
 * to load: the code itself, plus `export { handler, scheduled }` for those not exported yet.
 * Code the parser rejects is still sent to the runtime, whose syntax error is the one reported.
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
  for (const node of program.body as Node[]) {
    const n = node as Node & Record<string, any>; // acorn's node union is loose; fields checked below
    if (n.type === "ExportDefaultDeclaration") {
      return {
        ok: false,
        parsed: true,
        error: `\`export default\` is not supported (line ${n.loc?.start.line}): ${howTo}; Workerbase calls it for each request`,
      };
    }
    const decl = n.type === "ExportNamedDeclaration" ? n.declaration : n;
    if (n.type === "ExportNamedDeclaration") {
      for (const spec of n.specifiers ?? []) {
        const name = spec.exported.type === "Identifier" ? spec.exported.name : spec.exported.value;
        if (entrypoints.includes(name)) exported.add(name);
        if (name === "default") {
          return {
            ok: false,
            parsed: true,
            error: `\`export { ... as default }\` is not supported: ${howTo}`,
          };
        }
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
  if (declared.size === 0 && exported.size === 0) {
    return {
      ok: false,
      parsed: true,
      error: `No top-level \`handler\` (or \`scheduled\`) was found: ${howTo}`,
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
  const located = new RegExp(
    `Uncaught ([^\\n]*)\\n\\s*at ${moduleName.replace(".", "\\.")}:(\\d+):(\\d+)`,
  ).exec(message);
  if (located) return `${located[1]} at line ${located[2]}, column ${located[3]}`;
  const uncaught = /Uncaught ([^\n]*)/.exec(message);
  const text = uncaught ? uncaught[1] : message.replace(/^Failed to start Worker:\s*/, "");
  return fallback ? `${text} at line ${fallback.line}, column ${fallback.column}` : text;
}
