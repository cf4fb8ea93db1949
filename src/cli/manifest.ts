import fs from "node:fs";
import path from "node:path";
import { LineCounter, isMap, isScalar, parseDocument, stringify, type Document } from "yaml";
import { z } from "zod";
import { RuntimeConfig, Tool, slugPattern } from "../functions/schema.js";
import { ScheduleEntry, Schedules, normalize, type Schedule } from "../schedules/cron.js";
import { closest } from "./args.js";
import { entrypointFor, languageOf, type Language } from "./source.js";

/** The keys of `function.yaml`, after the Kapso CLI's layout; a missing key means its default. */
export const Manifest = z.strictObject({
  name: z.string().trim().min(1).max(100).optional(),
  slug: z
    .string()
    .max(64)
    .regex(slugPattern, "must be lowercase letters, digits and single hyphens")
    .optional(),
  description: z.string().max(2000).nullable().optional(),
  entrypoint: z
    .string()
    .min(1)
    .refine(
      (p) => !path.isAbsolute(p) && !p.split(/[\\/]/).includes(".."),
      "must be a file inside the function's folder",
    )
    .optional(),
  function_type: z.literal("cloudflare_worker", "must be cloudflare_worker").optional(),
  language: z.enum(["javascript", "typescript"], "must be javascript or typescript").optional(),
  public_endpoint: z.boolean().optional(),
  invoke_response_mode: z.enum(["passthrough", "wrapped"]).optional(),
  runtime_config: RuntimeConfig.optional(),
  tool: Tool.nullable().optional(),
  schedules: Schedules.optional(),
});

export const manifestKeys = Object.keys(Manifest.shape);
export const defaultEntrypoint = "index.js";
const nestedKeys: Record<string, string[]> = {
  "": manifestKeys,
  runtime_config: Object.keys(RuntimeConfig.shape),
  tool: Object.keys(Tool.shape),
  schedules: Object.keys(ScheduleEntry.shape),
};

/** `schedules[0].cron`: a key path as the server's error details name fields. */
function keyPath(at: (string | number)[]): string {
  return at.map((p, i) => (typeof p === "number" ? `[${p}]` : i > 0 ? `.${p}` : p)).join("");
}

/** A function as a folder describes it, every default filled in. */
export interface LocalFunction {
  folder: string;
  manifestFile: string;
  entrypointFile: string;
  slug: string;
  name: string;
  description: string | null;
  code: string;
  /** From `language:`, else from the entrypoint's extension (`.ts` is TypeScript). */
  language: Language;
  public_endpoint: boolean;
  invoke_response_mode: "passthrough" | "wrapped";
  runtime_config: { timeout: number; memory: number; compatibility_flags: string[] };
  tool: z.infer<typeof Tool> | null;
  /** Each with its defaults (`UTC`, `{}`) filled in, as the server stores them. */
  schedules: Schedule[];
}

/** A problem in a project folder, reported as `file:line: message`. */
export class ManifestError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${display(file)}:${line}: ${message}`);
  }
}

/** A path as the user would type it from here. */
export function display(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith("..") ? rel : file;
}

/** Without `entrypoint:`: the language's file, else `index.js`, else an `index.ts` that is there. */
function defaultEntrypointIn(folder: string, language: Language | undefined): string {
  if (language) return entrypointFor(language);
  const ts = entrypointFor("typescript");
  if (!fs.existsSync(path.join(folder, defaultEntrypoint)) && fs.existsSync(path.join(folder, ts)))
    return ts;
  return defaultEntrypoint;
}

/** The line of the YAML node at `at` (a key path), or of its nearest parent that exists. */
function lineOf(
  doc: Document,
  counter: LineCounter,
  at: (string | number)[],
  key?: string,
): number {
  for (let depth = at.length; depth >= 0; depth--) {
    const node = depth === 0 ? doc.contents : doc.getIn(at.slice(0, depth), true);
    const range = (node as { range?: [number, number, number] } | null)?.range;
    if (!range) continue;
    if (key !== undefined && depth === at.length && isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && p.key.value === key);
      if (pair && isScalar(pair.key) && pair.key.range)
        return counter.linePos(pair.key.range[0]).line;
    }
    return counter.linePos(range[0]).line;
  }
  return 1;
}

/** Reads and checks one `function.yaml` and its entrypoint; every problem names file and line. */
export function readLocalFunction(manifestFile: string): LocalFunction {
  const folder = path.dirname(manifestFile);
  const text = fs.readFileSync(manifestFile, "utf8");
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0].line ?? 1;
    const message = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
    throw new ManifestError(manifestFile, line, `invalid YAML: ${message}`);
  }
  const value: unknown = doc.toJS() ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ManifestError(
      manifestFile,
      lineOf(doc, counter, []),
      "expected a mapping of keys (name: ..., entrypoint: ...)",
    );
  }
  const result = Manifest.safeParse(value);
  if (!result.success) {
    // A misspelt key is also a missing one; the misspelling, with its suggestion, says more.
    const issues = result.error.issues;
    const issue = issues.find((i) => i.code === "unrecognized_keys") ?? issues[0];
    const at = issue.path.filter((p): p is string | number => typeof p !== "symbol");
    if (issue.code === "unrecognized_keys") {
      const key = issue.keys[0];
      // An entry of a list has the keys of the list's items (schedules[2] those of schedules).
      const valid = nestedKeys[at.filter((p) => typeof p === "string").join(".")] ?? [];
      const hint = closest(key, valid);
      throw new ManifestError(
        manifestFile,
        lineOf(doc, counter, at, key),
        `unknown key "${keyPath([...at, key])}"` +
          (hint
            ? `; did you mean "${hint}"?`
            : valid.length
              ? ` (known: ${valid.join(", ")})`
              : ""),
      );
    }
    throw new ManifestError(
      manifestFile,
      lineOf(doc, counter, at),
      `${keyPath(at) || "(file)"}: ${issue.message}`,
    );
  }
  const m = result.data;
  const entrypoint = m.entrypoint ?? defaultEntrypointIn(folder, m.language);
  const entrypointFile = path.join(folder, entrypoint);
  const language = m.language ?? languageOf(entrypoint);
  if (m.language && m.language !== languageOf(entrypoint)) {
    throw new ManifestError(
      manifestFile,
      lineOf(doc, counter, [], "language"),
      `language is ${m.language} but the entrypoint ${entrypoint} is ${languageOf(entrypoint) === "typescript" ? "a .ts file" : "not a .ts file"}; rename one of them or remove "language:"`,
    );
  }
  let code: string;
  try {
    code = fs.readFileSync(entrypointFile, "utf8");
  } catch {
    throw new ManifestError(
      manifestFile,
      m.entrypoint ? lineOf(doc, counter, [], "entrypoint") : 1,
      `entrypoint ${display(entrypointFile)} does not exist` +
        (m.entrypoint ? "" : ` (the default; set "entrypoint:" to name another file)`),
    );
  }
  const slug = m.slug ?? path.basename(folder);
  if (!slugPattern.test(slug)) {
    throw new ManifestError(
      manifestFile,
      1,
      `the folder name "${slug}" is not a valid slug; add "slug:" with lowercase letters, digits and hyphens`,
    );
  }
  return {
    folder,
    manifestFile,
    entrypointFile,
    slug,
    name: m.name ?? slug,
    description: m.description ?? null,
    code,
    language,
    public_endpoint: m.public_endpoint ?? false,
    invoke_response_mode: m.invoke_response_mode ?? "passthrough",
    runtime_config: {
      timeout: m.runtime_config?.timeout ?? 30,
      memory: m.runtime_config?.memory ?? 128,
      compatibility_flags: [...(m.runtime_config?.compatibility_flags ?? [])].sort(),
    },
    tool: m.tool ?? null,
    schedules: (m.schedules ?? []).map(normalize),
  };
}

/** The text of a `function.yaml` for a function as the server has it. */
export function manifestText(
  fn: {
    name: string;
    slug: string;
    description: string | null;
    public_endpoint: boolean;
    invoke_response_mode: string;
    runtime_config: Record<string, unknown>;
    tool: unknown;
    function_type: string;
    language?: string;
    schedules?: { cron: string; timezone: string; body: unknown }[];
  },
  entrypoint: string,
): string {
  const manifest: Record<string, unknown> = {
    name: fn.name,
    slug: fn.slug,
    ...(fn.description !== null ? { description: fn.description } : {}),
    entrypoint,
    function_type: fn.function_type,
    // Only when not the default, so a JavaScript function's file reads as before.
    ...(fn.language === "typescript" ? { language: fn.language } : {}),
    public_endpoint: fn.public_endpoint,
    invoke_response_mode: fn.invoke_response_mode,
    runtime_config: fn.runtime_config,
    ...(fn.tool ? { tool: fn.tool } : {}),
    ...(fn.schedules?.length ? { schedules: fn.schedules.map(scheduleEntry) } : {}),
  };
  return stringify(manifest);
}

/** An entry as `function.yaml` writes it: no `next_run_at`, and no key that has its default. */
function scheduleEntry(s: { cron: string; timezone: string; body: unknown }) {
  const emptyBody =
    s.body !== null &&
    typeof s.body === "object" &&
    !Array.isArray(s.body) &&
    Object.keys(s.body).length === 0;
  return {
    cron: s.cron,
    ...(s.timezone !== "UTC" ? { timezone: s.timezone } : {}),
    ...(emptyBody ? {} : { body: s.body }),
  };
}
