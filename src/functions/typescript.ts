import { transformSync } from "esbuild";
import { originalPositionFor, TraceMap } from "@jridgewell/trace-mapping";
import { moduleName } from "./code.js";

/** The name a TypeScript function's source has wherever a position is shown. */
export const typeScriptName = "function.ts";

export type Compiled =
  | { ok: true; code: string; map: string }
  | { ok: false; error: string; loc: { line: number; column: number } };

/**
 * Removes a TypeScript function's types with esbuild's transform (no type-checking, no
 * bundling: the same one file as JavaScript), keeping a source map so that every position
 * shown later (load errors, stack frames, console stacks) names the TypeScript line and
 * column. `enum` and `namespace` are compiled, `import type` is dropped.
 */
export function compileTypeScript(source: string): Compiled {
  try {
    const out = transformSync(source, {
      loader: "ts",
      format: "esm",
      target: "es2022",
      sourcemap: "external",
      sourcefile: typeScriptName,
      // The module keeps its names, so stack frames say `handler`, not a minified one.
      minify: false,
      keepNames: false,
    });
    return { ok: true, code: out.code, map: out.map };
  } catch (err) {
    const first = (
      err as { errors?: { text: string; location?: { line: number; column: number } }[] }
    ).errors?.[0];
    const loc = first?.location
      ? { line: first.location.line, column: first.location.column + 1 }
      : { line: 1, column: 1 };
    return {
      ok: false,
      error: `SyntaxError: ${first?.text ?? (err as Error).message} at line ${loc.line}, column ${loc.column}`,
      loc,
    };
  }
}

/**
 * Rewrites every `function.js:LINE:COL` in `text` (a stack, a console line, a load error) to
 * the TypeScript source's `function.ts:LINE:COL`, through the deployment's source map.
 * Positions the map does not cover keep the compiled position, renamed.
 */
export function toSourcePositions(text: string, map: TraceMap): string {
  const pattern = new RegExp(`${moduleName.replace(".", "\\.")}:(\\d+):(\\d+)`, "g");
  return text.replace(pattern, (whole, line: string, column: string) => {
    const found = originalPositionFor(map, { line: Number(line), column: Number(column) - 1 });
    if (found.line === null || found.column === null) return `${typeScriptName}:${line}:${column}`;
    return `${typeScriptName}:${found.line}:${found.column + 1}`;
  });
}

/** A parsed source map, for `toSourcePositions`. */
export function sourceMap(json: string): TraceMap {
  return new TraceMap(json);
}
