import { CliError, UsageError, intFlag, stringFlag, type ParsedArgs } from "./args.js";
import { jsonFlag, readUserFile, seg, sleep, type Command } from "./command.js";
import { platform, type Client } from "./http.js";
import { details, err, out, spinner, table, when } from "./output.js";
import { languageOf, languages, type Language } from "./source.js";

/** A function as the API renders it (the fields the CLI reads). */
export interface FunctionResource {
  id: string;
  name: string;
  slug: string;
  description: string | null;
  code?: string;
  /** Applies at the next deploy, like `code` (older servers: absent, meaning javascript). */
  language?: Language;
  version: number;
  status: "draft" | "deploying" | "deployed" | "error";
  last_deployed_at: string | null;
  deploy_error: string | null;
  function_type: string;
  runtime_config: { timeout?: number; memory?: number; compatibility_flags?: string[] };
  endpoint_url: string;
  public_endpoint: boolean;
  invoke_response_mode: "passthrough" | "wrapped";
  tool: { name: string; description: string; input_schema: Record<string, unknown> } | null;
  /** The version invocations run: `version` unless a rollback moved it; null before a deploy. */
  live_version: number | null;
  schedules: Schedule[];
  created_at: string;
  updated_at: string;
}

/** One cron trigger of a function, as the API renders it. */
export interface Schedule {
  cron: string;
  timezone: string;
  body: unknown;
  next_run_at: string | null;
}

export const notFound = (fn: string) => `function "${fn}" not found`;

/** The status column: coloured, with a mark when the last deploy failed. */
function status(fn: FunctionResource): string {
  const paint = out.paint;
  const colour =
    fn.status === "deployed"
      ? paint.green
      : fn.status === "error"
        ? paint.red
        : fn.status === "deploying"
          ? paint.cyan
          : paint.yellow;
  const text = colour(fn.status);
  return fn.deploy_error && fn.status === "deployed"
    ? `${text} ${paint.red("(last deploy failed)")}`
    : text;
}

export interface DeployOutcome {
  ok: boolean;
  fn: FunctionResource;
}

export interface DeployOptions {
  /** Stored with the version this deploy creates (`functions versions` shows it). */
  message?: string;
  timeoutMs?: number;
}

/** Starts a deploy and polls until the function leaves `deploying`. */
export async function deployAndWait(
  api: Client,
  fn: string,
  { message, timeoutMs = 120_000 }: DeployOptions = {},
): Promise<DeployOutcome> {
  await api.call("POST", `/functions/${seg(fn)}/deploy`, {
    ...(message !== undefined ? { json: { message } } : {}),
    notFound: notFound(fn),
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { data } = await api.call<{ data: FunctionResource }>("GET", `/functions/${seg(fn)}`, {
      notFound: notFound(fn),
    });
    if (data.status !== "deploying") {
      return { ok: data.status === "deployed" && data.deploy_error === null, fn: data };
    }
    if (Date.now() > deadline) {
      throw new CliError(`the deploy of "${fn}" did not finish within ${timeoutMs / 1000} s`);
    }
    await sleep(150);
  }
}

/** "; version N is still live" after a failed deploy, or nothing before the first success. */
export function stillLive(fn: FunctionResource): string {
  // An older server has no live_version: the newest version is the live one there.
  const live = fn.live_version === undefined ? fn.version : fn.live_version;
  return live ? `; version ${live} is still live` : "";
}

/** One line saying how a deploy went. */
export function describeDeploy(outcome: DeployOutcome): string {
  const { fn } = outcome;
  if (outcome.ok) return `deployed ${fn.slug} (version ${fn.version})`;
  return `deploy of ${fn.slug} failed: ${fn.deploy_error ?? `status ${fn.status}`}${stillLive(fn)}`;
}

/** `--message` of the commands that deploy. */
export const messageFlag = {
  message: {
    type: "string",
    alias: "m",
    value: "text",
    help: "a note stored with the new version (functions versions shows it)",
  },
} as const;

const settingsFlags = {
  public: { type: "boolean", help: "callable without a key" },
  mode: { type: "string", value: "passthrough|wrapped", help: "how responses come back" },
  timeout: { type: "string", value: "s", help: "time limit, 1..300 seconds" },
  memory: { type: "string", value: "MB", help: "memory, 16..1024 MB" },
  description: { type: "string", value: "text", help: "a description" },
  language: {
    type: "string",
    value: "javascript|typescript",
    help: "the code's language (default: from the file's extension, .ts is TypeScript)",
  },
} as const;

/** `code` and `language` from `--file` (its extension) and `--language`. */
function codeFrom(args: ParsedArgs, file: string | undefined): Record<string, unknown> {
  const flag = stringFlag(args, "language");
  if (flag !== undefined && !languages.includes(flag as Language)) {
    throw new UsageError(`--language must be javascript or typescript, got "${flag}"`);
  }
  if (!file) {
    if (flag !== undefined) throw new UsageError("--language needs --file: the code it describes");
    return {};
  }
  return { code: readUserFile(file), language: flag ?? languageOf(file) };
}

/** The settings given by flags, as API fields. */
function settingsFrom(args: ParsedArgs): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  const mode = stringFlag(args, "mode");
  if (mode !== undefined) {
    if (mode !== "passthrough" && mode !== "wrapped") {
      throw new UsageError(`--mode must be passthrough or wrapped, got "${mode}"`);
    }
    fields.invoke_response_mode = mode;
  }
  const timeout = intFlag(args, "timeout", 1, 300);
  const memory = intFlag(args, "memory", 16, 1024);
  if (timeout !== undefined || memory !== undefined) {
    fields.runtime_config = {
      ...(timeout !== undefined ? { timeout } : {}),
      ...(memory !== undefined ? { memory } : {}),
    };
  }
  const description = stringFlag(args, "description");
  if (description !== undefined) fields.description = description;
  if (args.flags.public && args.flags.private) {
    throw new UsageError("--public and --private cannot be used together");
  }
  if (args.flags.public) fields.public_endpoint = true;
  if (args.flags.private) fields.public_endpoint = false;
  return fields;
}

export const functionCommands: Command[] = [
  {
    name: "functions list",
    usage: "[--json]",
    summary: "list the project's functions",
    args: [0, 0],
    flags: jsonFlag,
    async run(args) {
      const body = await platform(args).call<{ data: FunctionResource[] }>("GET", "/functions");
      if (args.flags.json) return out.json(body);
      if (body.data.length === 0) {
        out.line(
          "No functions yet; create one with: workerbase functions create <name> --file <path>",
        );
        return;
      }
      out.line(
        table(
          ["SLUG", "NAME", "STATUS", "VERSION", "ACCESS", "MODE", "DEPLOYED"],
          body.data.map((fn) => [
            fn.slug,
            fn.name,
            status(fn),
            fn.version,
            fn.public_endpoint ? "public" : "private",
            fn.invoke_response_mode,
            when(fn.last_deployed_at),
          ]),
        ),
      );
    },
  },
  {
    name: "functions get",
    usage: "<fn> [--code] [--json]",
    summary: "show one function (by slug or id)",
    args: [1, 1],
    flags: { ...jsonFlag, code: { type: "boolean", help: "print only its draft code" } },
    async run(args) {
      const fn = args.positionals[0];
      const body = await platform(args).call<{ data: FunctionResource }>(
        "GET",
        `/functions/${seg(fn)}`,
        { notFound: notFound(fn) },
      );
      if (args.flags.json) return out.json(body);
      const f = body.data;
      if (args.flags.code) {
        process.stdout.write(f.code ?? "");
        return;
      }
      out.line(
        details([
          ["id", f.id],
          ["name", f.name],
          ["slug", f.slug],
          ["description", f.description],
          ["status", status(f)],
          ["language", f.language ?? "javascript"],
          ["version", f.version],
          ...(f.live_version != null && f.live_version !== f.version
            ? ([["live version", `${f.live_version} (rolled back)`]] as [string, unknown][])
            : []),
          ...(f.deploy_error
            ? ([["deploy error", out.paint.red(f.deploy_error)]] as [string, unknown][])
            : []),
          ["last deployed", f.last_deployed_at],
          ["access", f.public_endpoint ? "public" : "private (X-API-Key)"],
          ["response mode", f.invoke_response_mode],
          ["runtime", f.runtime_config],
          ["tool", f.tool ? f.tool.name : null],
          [
            "schedules",
            f.schedules?.length
              ? `${f.schedules.map((s) => s.cron).join(", ")} (workerbase functions schedules ${f.slug})`
              : null,
          ],
          ["endpoint", f.endpoint_url],
          ["created", f.created_at],
          ["updated", f.updated_at],
          [
            "code",
            `${(f.code ?? "").split("\n").length} lines (workerbase functions get ${f.slug} --code)`,
          ],
        ]),
      );
    },
  },
  {
    name: "functions create",
    usage:
      "<name> --file <path> [--language javascript|typescript] [--slug s] [--public] [--mode passthrough|wrapped] [--timeout s]",
    summary: "create a draft function from a file",
    args: [1, 1],
    flags: {
      ...jsonFlag,
      ...settingsFlags,
      file: { type: "string", value: "path", help: "the handler's code" },
      slug: { type: "string", value: "slug", help: "its slug (default: from the name)" },
    },
    async run(args) {
      const file = stringFlag(args, "file");
      if (!file) throw new UsageError('--file is required: the file with "async function handler"');
      const fields = {
        name: args.positionals[0],
        ...codeFrom(args, file),
        ...(stringFlag(args, "slug") ? { slug: stringFlag(args, "slug") } : {}),
        ...settingsFrom(args),
      };
      const body = await platform(args).call<{ data: FunctionResource }>("POST", "/functions", {
        json: { function: fields },
      });
      if (args.flags.json) return out.json(body);
      out.line(`created ${body.data.slug} (${body.data.id}) as a draft`);
      out.line(out.paint.dim(`deploy it with: workerbase functions deploy ${body.data.slug}`));
    },
  },
  {
    name: "functions update",
    usage: "<fn> [--file path] [--public|--private] [--mode m] [--timeout s] [--name n]",
    summary: "save changes without deploying",
    args: [1, 1],
    flags: {
      ...jsonFlag,
      ...settingsFlags,
      private: { type: "boolean", help: "callable only with a key" },
      file: { type: "string", value: "path", help: "new code" },
      name: { type: "string", value: "name", help: "new name" },
    },
    async run(args) {
      const fn = args.positionals[0];
      const fields = settingsFrom(args);
      const file = stringFlag(args, "file");
      Object.assign(fields, codeFrom(args, file));
      const name = stringFlag(args, "name");
      if (name !== undefined) fields.name = name;
      if (Object.keys(fields).length === 0) {
        throw new UsageError(
          "nothing to update: give --file, --public, --private, --mode, --timeout, --memory, --name or --description",
        );
      }
      const body = await platform(args).call<{ data: FunctionResource }>(
        "PATCH",
        `/functions/${seg(fn)}`,
        {
          json: { function: fields },
          notFound: notFound(fn),
        },
      );
      if (args.flags.json) return out.json(body);
      const pending = "code" in fields || "runtime_config" in fields;
      out.line(
        `updated ${body.data.slug}${pending ? "; code and runtime settings apply at the next deploy" : ""}`,
      );
    },
  },
  {
    name: "functions deploy",
    usage: "<fn> [--message text] [--json]",
    summary: "deploy the draft as a new version and wait for the outcome",
    args: [1, 1],
    flags: { ...jsonFlag, ...messageFlag },
    async run(args) {
      const fn = args.positionals[0];
      const message = stringFlag(args, "message");
      const api = platform(args);
      const spin = spinner(`deploying ${fn}`);
      let outcome: DeployOutcome;
      try {
        outcome = await deployAndWait(api, fn, { message });
      } finally {
        spin.stop();
      }
      if (args.flags.json) out.json({ data: outcome.fn });
      else if (outcome.ok) out.line(`${out.paint.green("✓")} ${describeDeploy(outcome)}`);
      if (!outcome.ok) {
        err.line(`${err.paint.red("error:")} ${describeDeploy(outcome)}`);
        return 1;
      }
    },
  },
  {
    name: "functions delete",
    usage: "<fn>",
    summary: "delete a function and its secrets",
    args: [1, 1],
    flags: {},
    async run(args) {
      const fn = args.positionals[0];
      await platform(args).call("DELETE", `/functions/${seg(fn)}`, { notFound: notFound(fn) });
      out.line(`deleted ${fn}`);
    },
  },
];
