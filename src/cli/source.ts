import path from "node:path";
import type { TraceMap } from "@jridgewell/trace-mapping";

/** A function's `language`, as the API names it. */
export type Language = "javascript" | "typescript";

export const languages: readonly Language[] = ["javascript", "typescript"];

/** The language a file's extension says: `.ts` (`.mts`, `.cts`) is TypeScript. */
export function languageOf(file: string): Language {
  return /^\.[mc]?ts$/i.test(path.extname(file)) ? "typescript" : "javascript";
}

/** The entrypoint `pull` writes for a function of this language. */
export function entrypointFor(language: Language | undefined): string {
  return language === "typescript" ? "index.ts" : "index.js";
}

/** Local code as the deploy would load it, or why the deploy would refuse it. */
export type CheckedCode =
  | { ok: true; js: string; map: TraceMap | null }
  | { ok: false; kind: "syntax" | "import"; message: string; line: number };

/**
 * Checks code on this machine the way a deploy does before anything is uploaded: TypeScript
 * is compiled with the deploy's own type stripping, then its imports are checked with the
 * deploy's own sentence (`importProblem`), with lines named in the source's terms.
 */
export async function checkCode(
  code: string,
  language: Language,
  compatibilityFlags: readonly string[] = [],
): Promise<CheckedCode> {
  // Loaded here so that commands without code to check do not pay for esbuild and acorn.
  const { importProblem } = await import("../functions/code.js");
  let js = code;
  let map: TraceMap | null = null;
  if (language === "typescript") {
    const { compileTypeScript, sourceMap } = await import("../functions/typescript.js");
    const compiled = compileTypeScript(code);
    if (!compiled.ok)
      return { ok: false, kind: "syntax", message: compiled.error, line: compiled.loc.line };
    js = compiled.code;
    map = sourceMap(compiled.map);
  }
  const problem = importProblem(js, compatibilityFlags);
  if (problem) {
    const message = await toSourceText(problem, map);
    const line = Number(/\(line (\d+)\)/.exec(message)?.[1] ?? 1);
    return { ok: false, kind: "import", message, line };
  }
  return { ok: true, js, map };
}

/**
 * A text from the runtime about compiled code (a deploy error's `at line L, column C` or
 * `(line L)`, a stack's `function.js:L:C`) with every position named in the TypeScript
 * source's terms; unchanged without a map.
 */
export async function toSourceText(text: string, map: TraceMap | null): Promise<string> {
  if (!map) return text;
  const { toSourcePositions } = await import("../functions/typescript.js");
  const at = (line: string, column: string) => {
    const mapped = /:(\d+):(\d+)$/.exec(toSourcePositions(`function.js:${line}:${column}`, map));
    return mapped ? { line: mapped[1], column: mapped[2] } : { line, column };
  };
  return toSourcePositions(text, map)
    .replace(/\bat line (\d+), column (\d+)/g, (_w, l: string, c: string) => {
      const p = at(l, c);
      return `at line ${p.line}, column ${p.column}`;
    })
    .replace(/\(line (\d+)\)/g, (_w, l: string) => `(line ${at(l, "1").line})`);
}
