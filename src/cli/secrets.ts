import { CliError, UsageError, stringFlag, type ParsedArgs } from "./args.js";
import { jsonFlag, readStdin, seg, type Command } from "./command.js";
import { platform } from "./http.js";
import { out, table, when } from "./output.js";
import { notFound } from "./functions.js";

const namePattern = /^[A-Z][A-Z0-9_]*$/;

/** Checks a secret name as the server would, so a typo costs no round trip. */
export function checkSecretName(name: string): string {
  if (!namePattern.test(name)) {
    throw new UsageError(
      `secret names are upper case letters, digits and _ starting with a letter (like API_TOKEN), got "${name}"`,
    );
  }
  if (name === "KV" || name === "DB")
    throw new UsageError(`${name} is reserved for the binding env.${name}`);
  return name;
}

/**
 * The function (or the project, with --project) a secrets command is about, and the
 * arguments after it, of which there must be `min` to `max`.
 */
function scope(
  args: ParsedArgs,
  min: number,
  max: number,
): { route: string; owner: string; rest: string[] } {
  const project = Boolean(args.flags.project);
  const rest = project ? args.positionals : args.positionals.slice(1);
  if (!project && args.positionals.length === 0) {
    throw new UsageError(
      "name the function (slug or id), or pass --project for project-level secrets",
    );
  }
  if (rest.length < min || rest.length > max) {
    throw new UsageError(
      rest.length < min
        ? "the secret's NAME is missing"
        : `too many arguments: ${rest.slice(max).join(" ")}`,
    );
  }
  if (project) return { route: "/secrets", owner: "the project", rest };
  const fn = args.positionals[0];
  return { route: `/functions/${seg(fn)}/secrets`, owner: `function ${fn}`, rest };
}

function fnNotFound(args: ParsedArgs): string | undefined {
  return args.flags.project ? undefined : notFound(args.positionals[0]);
}

/** Reads a value typed at a terminal without showing it. */
function readHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    let value = "";
    const done = (result: Error | string) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n") return done(value);
        if (ch === "\u0003") return done(new CliError("cancelled", 130));
        if (ch === "\u0004") return done(value);
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on("data", onData);
  });
}

/** The value from the command line, or else stdin: typed hidden at a terminal, or piped. */
async function secretValue(given: string | undefined, name: string): Promise<string> {
  if (given !== undefined) return given;
  if (process.stdin.isTTY) return readHidden(`value of ${name} (not shown): `);
  const text = (await readStdin()).toString("utf8");
  return text.replace(/\r?\n$/, "");
}

const projectFlag = {
  project: { type: "boolean", help: "project-level secrets, which every function receives" },
} as const;

export const secretCommands: Command[] = [
  {
    name: "secrets list",
    usage: "<fn> | --project [--json]",
    summary: "names and types of secrets, never values",
    args: [0, 1],
    flags: { ...jsonFlag, ...projectFlag },
    async run(args) {
      const { route, owner } = scope(args, 0, 0);
      const body = await platform(args).call<{
        data: { name: string; type: string; created_at: string }[];
      }>("GET", route, { notFound: fnNotFound(args) });
      if (args.flags.json) return out.json(body);
      if (body.data.length === 0) return out.line(`No secrets for ${owner}.`);
      out.line(
        table(
          ["NAME", "TYPE", "FROM", "CREATED"],
          body.data.map((s) => [
            s.name,
            s.type === "inherited" ? "-" : s.type,
            s.type === "inherited" ? "project" : args.flags.project ? "project" : "function",
            when(s.created_at),
          ]),
        ),
      );
    },
  },
  {
    name: "secrets set",
    usage: "<fn> | --project NAME [VALUE] [--type text|json]",
    summary: "set a secret; without VALUE it is read from stdin (hidden at a terminal)",
    args: [1, 3],
    flags: {
      ...jsonFlag,
      ...projectFlag,
      type: { type: "string", value: "text|json", help: "json stores a JSON value (default text)" },
    },
    async run(args) {
      const { route, owner, rest } = scope(args, 1, 2);
      const name = checkSecretName(rest[0]);
      const type = stringFlag(args, "type") ?? "text";
      if (type !== "text" && type !== "json") {
        throw new UsageError(`--type must be text or json, got "${type}"`);
      }
      const value = await secretValue(rest[1], name);
      if (type === "json") {
        try {
          JSON.parse(value);
        } catch {
          throw new CliError(`the value of ${name} is not valid JSON (--type json)`);
        }
      }
      const body = await platform(args).call<{ data: { name: string; type: string } }>(
        "POST",
        route,
        {
          json: { secret: { name, value, type } },
          notFound: fnNotFound(args),
        },
      );
      if (args.flags.json) return out.json(body);
      out.line(`set ${body.data.name} (${body.data.type}) for ${owner}`);
    },
  },
  {
    name: "secrets delete",
    usage: "<fn> | --project NAME",
    summary: "delete a secret",
    args: [1, 2],
    flags: projectFlag,
    async run(args) {
      const { route, owner, rest } = scope(args, 1, 1);
      const name = checkSecretName(rest[0]);
      await platform(args).call("DELETE", `${route}/${name}`);
      out.line(`deleted ${name} from ${owner}`);
    },
  },
];
