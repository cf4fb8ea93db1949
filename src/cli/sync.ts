import fs from "node:fs";
import path from "node:path";
import { CliError, stringFlag } from "./args.js";
import { seg, type Command } from "./command.js";
import { platform, type Client } from "./http.js";
import { err, out, spinner } from "./output.js";
import {
  deployAndWait,
  messageFlag,
  stillLive,
  type DeployOutcome,
  type FunctionResource,
} from "./functions.js";
import {
  ManifestError,
  display,
  manifestText,
  readLocalFunction,
  type LocalFunction,
} from "./manifest.js";
import { checkCode, entrypointFor, languageOf } from "./source.js";

/** `<file>:<line>:<col>: message` for a deploy error that names a line of the code. */
export function locateError(deployError: string, file: string): string {
  const m = /^([\s\S]*?) at line (\d+), column (\d+)$/.exec(deployError);
  return m ? `${display(file)}:${m[2]}:${m[3]}: ${m[1]}` : deployError;
}

/** JSON with sorted keys, so that equal values compare equal. */
function stable(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

/** The server's settings in the same shape as a local function's. */
function serverShape(fn: FunctionResource) {
  return {
    name: fn.name,
    description: fn.description,
    code: fn.code ?? "",
    language: fn.language ?? "javascript",
    public_endpoint: fn.public_endpoint,
    invoke_response_mode: fn.invoke_response_mode,
    runtime_config: {
      timeout: fn.runtime_config.timeout ?? 30,
      memory: fn.runtime_config.memory ?? 128,
      compatibility_flags: [...(fn.runtime_config.compatibility_flags ?? [])].sort(),
    },
    tool: fn.tool,
    schedules: (fn.schedules ?? []).map((s) => ({
      cron: s.cron,
      timezone: s.timezone,
      body: s.body,
    })),
  };
}

const compared = [
  "name",
  "description",
  "code",
  "language",
  "public_endpoint",
  "invoke_response_mode",
  "runtime_config",
  "tool",
  "schedules",
] as const;

/** Fields that only a deploy puts into effect; the others apply as soon as they are saved. */
const deployed = new Set<string>(["code", "language", "runtime_config"]);

interface Step {
  local: LocalFunction;
  action: "create" | "update" | "unchanged";
  changed: (typeof compared)[number][];
  /**
   * Whether the step deploys: a new function, a changed draft or runtime settings, or a
   * function never deployed. A change only to settings that apply at once (schedules, the
   * tool, ...) is saved without a deploy, which would otherwise undo a rollback.
   */
  deploy: boolean;
}

/** Every `functions/<folder>/function.yaml` under `dir`, checked; all problems are reported. */
async function readProject(dir: string): Promise<LocalFunction[]> {
  const root = path.join(dir, "functions");
  if (!fs.existsSync(root)) {
    throw new CliError(
      `no functions/ folder in ${display(path.resolve(dir))}: run "workerbase pull" first, or create functions/<slug>/function.yaml`,
    );
  }
  const locals: LocalFunction[] = [];
  const problems: string[] = [];
  for (const entry of fs
    .readdirSync(root, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
    const manifest = path.join(root, entry.name, "function.yaml");
    if (!fs.existsSync(manifest)) {
      err.line(
        err.paint.yellow(
          `skipping ${display(path.join(root, entry.name))}/: it has no function.yaml`,
        ),
      );
      continue;
    }
    let local: LocalFunction;
    try {
      local = readLocalFunction(manifest);
    } catch (e) {
      if (e instanceof ManifestError) problems.push(e.message);
      else throw e;
      continue;
    }
    locals.push(local);
    // The deploy's own refusal of imports, before anything is uploaded. A syntax error is
    // left to the deploy, which reports it with its line like any other deploy error.
    const checked = await checkCode(
      local.code,
      local.language,
      local.runtime_config.compatibility_flags,
    );
    if (!checked.ok && checked.kind === "import")
      problems.push(`${display(local.entrypointFile)}:${checked.line}: ${checked.message}`);
  }
  const bySlug = new Map<string, LocalFunction>();
  for (const local of locals) {
    const other = bySlug.get(local.slug);
    if (other) {
      problems.push(
        `${display(local.manifestFile)}:1: slug "${local.slug}" is also used by ${display(other.manifestFile)}`,
      );
    }
    bySlug.set(local.slug, local);
  }
  if (problems.length > 0) {
    for (const problem of problems.slice(0, -1)) err.line(`${err.paint.red("error:")} ${problem}`);
    throw new CliError(problems[problems.length - 1]);
  }
  return locals;
}

/** The fields of a local function to send when creating it or updating `fields`. */
function fieldsOf(local: LocalFunction, fields: readonly (typeof compared)[number][]) {
  const all: Record<string, unknown> = {
    name: local.name,
    description: local.description,
    code: local.code,
    language: local.language,
    public_endpoint: local.public_endpoint,
    invoke_response_mode: local.invoke_response_mode,
    // An empty flag list is sent on update so that flags removed locally go on the server too.
    runtime_config: local.runtime_config,
    tool: local.tool,
    // The whole list: a PATCH replaces it, so entries removed locally go on the server too.
    schedules: local.schedules,
  };
  return Object.fromEntries(fields.map((f) => [f, all[f]]));
}

async function plan(
  api: Client,
  locals: LocalFunction[],
): Promise<{ steps: Step[]; serverOnly: string[] }> {
  const list = await api.call<{ data: FunctionResource[] }>("GET", "/functions");
  const remote = new Map(list.data.map((fn) => [fn.slug, fn]));
  const steps: Step[] = [];
  for (const local of locals) {
    if (!remote.has(local.slug)) {
      steps.push({ local, action: "create", changed: [...compared], deploy: true });
      continue;
    }
    const { data } = await api.call<{ data: FunctionResource }>(
      "GET",
      `/functions/${seg(local.slug)}`,
    );
    const server = serverShape(data);
    const changed = compared.filter((f) => stable(server[f]) !== stable(local[f]));
    steps.push({
      local,
      action: changed.length ? "update" : "unchanged",
      changed,
      deploy:
        changed.length > 0 && (data.version === 0 || changed.some((field) => deployed.has(field))),
    });
  }
  const mine = new Set(locals.map((l) => l.slug));
  const serverOnly = list.data.map((fn) => fn.slug).filter((s) => !mine.has(s));
  return { steps, serverOnly };
}

function printPlan(base: string, steps: Step[], serverOnly: string[]) {
  const p = out.paint;
  const width = Math.max(...steps.map((s) => s.local.slug.length), 4);
  out.line(`Plan for ${base}:`);
  for (const step of steps) {
    const slug = step.local.slug.padEnd(width);
    if (step.action === "create") out.line(`  ${p.green("+")} ${slug}  create and deploy`);
    else if (step.action === "update") {
      out.line(
        `  ${p.yellow("~")} ${slug}  update ${step.changed.join(", ")}${step.deploy ? "; deploy" : " (applies at once, no deploy)"}`,
      );
    } else out.line(`  ${p.dim("=")} ${slug}  ${p.dim("unchanged")}`);
  }
  const changes = steps.filter((s) => s.action !== "unchanged").length;
  const deploys = steps.filter((s) => s.deploy).length;
  const summary = [`${deploys} to deploy`];
  if (changes > deploys) summary.push(`${changes - deploys} to update without a deploy`);
  summary.push(`${steps.length - changes} unchanged`);
  if (serverOnly.length > 0)
    summary.push(`${serverOnly.length} only on the server, left alone (${serverOnly.join(", ")})`);
  out.line(p.dim(`  ${summary.join(", ")}`));
}

export const syncCommands: Command[] = [
  {
    name: "pull",
    usage: "[dir]",
    summary: "write every function to dir/functions/<slug>/ (function.yaml + code)",
    args: [0, 1],
    flags: {},
    async run(args) {
      const dir = args.positionals[0] ?? ".";
      const api = platform(args);
      const list = await api.call<{ data: FunctionResource[] }>("GET", "/functions");
      // Keep an existing folder and entrypoint name for a slug already pulled.
      const existing = new Map<string, { folder: string; entrypoint: string }>();
      const root = path.join(dir, "functions");
      if (fs.existsSync(root)) {
        for (const entry of fs.readdirSync(root, { withFileTypes: true })) {
          if (!entry.isDirectory()) continue;
          const manifest = path.join(root, entry.name, "function.yaml");
          try {
            const local = readLocalFunction(manifest);
            existing.set(local.slug, {
              folder: local.folder,
              entrypoint: path.relative(local.folder, local.entrypointFile),
            });
          } catch {
            // An unreadable folder is simply written anew under its slug.
          }
        }
      }
      for (const summary of list.data) {
        const { data: fn } = await api.call<{ data: FunctionResource }>(
          "GET",
          `/functions/${seg(summary.id)}`,
        );
        const entrypoint = entrypointFor(fn.language);
        const kept = existing.get(fn.slug);
        const place = kept
          ? {
              folder: kept.folder,
              // A function whose language changed gets the other extension.
              entrypoint:
                languageOf(kept.entrypoint) === (fn.language ?? "javascript")
                  ? kept.entrypoint
                  : kept.entrypoint.replace(/(\.[^./\\]*)?$/, path.extname(entrypoint)),
            }
          : { folder: path.join(root, fn.slug), entrypoint };
        fs.mkdirSync(place.folder, { recursive: true });
        fs.writeFileSync(
          path.join(place.folder, "function.yaml"),
          manifestText(fn, place.entrypoint),
        );
        fs.writeFileSync(path.join(place.folder, place.entrypoint), fn.code ?? "");
        out.line(`  ${display(place.folder)}/  function.yaml, ${place.entrypoint}`);
      }
      out.line(
        `pulled ${list.data.length} function${list.data.length === 1 ? "" : "s"} into ${display(path.resolve(root))}`,
      );
    },
  },
  {
    name: "push",
    usage: "[dir] [--dry-run] [--message text]",
    summary: "create or update the functions that differ from dir/functions/, deploy them",
    args: [0, 1],
    flags: {
      "dry-run": { type: "boolean", help: "print the plan, change nothing" },
      ...messageFlag,
    },
    async run(args) {
      const dir = args.positionals[0] ?? ".";
      const message = stringFlag(args, "message");
      const locals = await readProject(dir);
      const api = platform(args);
      const { steps, serverOnly } = await plan(api, locals);
      printPlan(api.base, steps, serverOnly);
      const work = steps.filter((s) => s.action !== "unchanged");
      if (args.flags["dry-run"]) {
        out.line("dry run: nothing was changed");
        return 0;
      }
      if (work.length === 0) {
        out.line("nothing to push");
        return 0;
      }
      let failed = 0;
      const saved: Step[] = [];
      for (const step of work) {
        try {
          if (step.action === "create") {
            const fields = fieldsOf(step.local, compared);
            const flags = step.local.runtime_config.compatibility_flags;
            fields.runtime_config = {
              timeout: step.local.runtime_config.timeout,
              memory: step.local.runtime_config.memory,
              ...(flags.length ? { compatibility_flags: flags } : {}),
            };
            if (step.local.schedules.length === 0) delete fields.schedules;
            await api.call("POST", "/functions", {
              json: {
                function: { ...fields, slug: step.local.slug, function_type: "cloudflare_worker" },
              },
            });
          } else {
            await api.call("PATCH", `/functions/${seg(step.local.slug)}`, {
              json: { function: fieldsOf(step.local, step.changed) },
            });
          }
        } catch (e) {
          if (!(e instanceof CliError)) throw e;
          failed++;
          out.line(
            `  ${out.paint.red("✗")} ${step.local.slug}: ${step.action} failed: ${e.message}`,
          );
          continue;
        }
        if (step.deploy) saved.push(step);
        else out.line(`  ${out.paint.green("✓")} ${step.local.slug}: updated`);
      }
      const spin = spinner(`deploying ${saved.length} function${saved.length === 1 ? "" : "s"}`);
      const settled = await Promise.allSettled(
        saved.map((step): Promise<DeployOutcome> =>
          deployAndWait(api, step.local.slug, { message }),
        ),
      );
      spin.stop();
      settled.forEach((result, i) => {
        const { local } = saved[i];
        if (result.status === "rejected") {
          failed++;
          out.line(
            `  ${out.paint.red("✗")} ${local.slug}: deploy failed: ${(result.reason as Error).message}`,
          );
        } else if (result.value.ok) {
          out.line(
            `  ${out.paint.green("✓")} ${local.slug}: deployed (version ${result.value.fn.version})`,
          );
        } else {
          failed++;
          const { fn } = result.value;
          out.line(
            `  ${out.paint.red("✗")} ${local.slug}: deploy failed: ${locateError(fn.deploy_error ?? fn.status, local.entrypointFile)}${stillLive(fn)}`,
          );
        }
      });
      if (failed > 0) {
        err.line(
          `${err.paint.red("error:")} ${failed} of ${work.length} function${work.length === 1 ? "" : "s"} failed; see above`,
        );
        return 1;
      }
      out.line(`pushed ${work.length} function${work.length === 1 ? "" : "s"}`);
      return 0;
    },
  },
];
