import { readFileSync } from "node:fs";
import { CliError, UsageError, closest, globalFlags, parseArgs, type Flags } from "./args.js";
import type { Command } from "./command.js";
import { functionCommands } from "./functions.js";
import { invokeCommand } from "./invoke.js";
import { logsCommand } from "./logs.js";
import { versionCommands } from "./versions.js";
import { schedulesCommand } from "./schedules.js";
import { secretCommands } from "./secrets.js";
import { kvCommands } from "./kv.js";
import { dbCommands } from "./db.js";
import { projectCommands } from "./projects.js";
import { syncCommands } from "./sync.js";
import { devCommand } from "./dev.js";
import { whatsappCommands } from "./whatsapp.js";
import { err } from "./output.js";

/** `serve`'s flags, checked here so a typo gets a suggestion; src/host/config.ts reads them. */
const serveCommand: Command = {
  name: "serve",
  usage:
    "[--port N] [--host H] [--data DIR] [--public-url URL] [--invoke-origin URL] [--allow-private-network] [--workers N] [--database-url URL] [--cluster-address HOST:PORT]",
  summary: "run the platform (this process becomes the server)",
  args: [0, 0],
  flags: {
    port: { type: "string", value: "N", help: "port (PORT, default 8787)" },
    host: { type: "string", value: "H", help: "address to listen on (HOST, default 127.0.0.1)" },
    data: {
      type: "string",
      value: "DIR",
      help: "data dir (WORKERBASE_DATA_DIR, default ./.workerbase)",
    },
    "public-url": { type: "string", value: "URL", help: "base of endpoint_url (PUBLIC_URL)" },
    "invoke-origin": {
      type: "string",
      value: "URL",
      help: "separate origin for invocations, on another host name (WORKERBASE_INVOKE_ORIGIN)",
    },
    "allow-private-network": {
      type: "boolean",
      help: "let functions fetch loopback and private addresses (development)",
    },
    processes: {
      type: "string",
      value: "N",
      help: "workerd processes (WORKERBASE_RUNTIME_PROCESSES)",
    },
    "cluster-address": {
      type: "string",
      value: "HOST:PORT",
      help: "where the other hosts of a cluster reach this one (WORKERBASE_CLUSTER_ADDRESS, default 127.0.0.1 on a free port)",
    },
    workers: {
      type: "string",
      value: "N",
      help: "hosts run behind the one port, sharing the store and data dir (WORKERBASE_WORKERS, default 1)",
    },
    "database-url": {
      type: "string",
      value: "URL",
      help: "postgres://... store shared by a cluster (DATABASE_URL; default SQLite in the data dir)",
    },
  },
  async run(args) {
    const { serve } = await import("./serve.js");
    return serve(args.raw ?? []);
  },
};

/** `workerbase mcp` (src/cli/mcp.ts), loaded only when run: the MCP SDK is slow to import. */
const mcpCommand: Command = {
  name: "mcp",
  usage: "",
  summary: "serve the project's tools over MCP on stdio (a bridge to the server's /mcp)",
  args: [0, 0],
  flags: {},
  async run(args) {
    const { mcpCommand: bridge } = await import("./mcp.js");
    return bridge.run(args);
  },
};

const functions = functionCommands.filter((c) => c.name !== "functions delete");
const commands: Command[] = [
  serveCommand,
  ...functions,
  invokeCommand,
  logsCommand,
  ...versionCommands,
  schedulesCommand,
  ...functionCommands.filter((c) => c.name === "functions delete"),
  ...secretCommands,
  ...kvCommands,
  ...dbCommands,
  ...projectCommands,
  ...syncCommands,
  devCommand,
  ...whatsappCommands,
  mcpCommand,
];

const groups: [string, string][] = [
  ["serve", "Server"],
  ["functions", "Functions (<fn> is a slug or an id)"],
  ["secrets", "Secrets (values are never printed)"],
  ["kv", "KV"],
  ["db", "Database"],
  ["projects", "Operator (admin key: --admin-key or WORKERBASE_ADMIN_KEY)"],
  ["pull", "Project folder (functions/<slug>/function.yaml + code)"],
  ["dev", "Local development"],
  ["whatsapp", "WhatsApp"],
  ["mcp", "Agents"],
];

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    return String(pkg.version);
  } catch {
    return "unknown";
  }
}

function flagLines(flags: Flags): string[] {
  return Object.entries(flags).map(([name, spec]) => {
    const left = `${spec.alias ? `-${spec.alias}, ` : "    "}--${name}${spec.value ? ` ${spec.value}` : ""}`;
    return `  ${left.padEnd(34)} ${spec.help}`;
  });
}

/** `workerbase --help`: every command. */
export function usage(): string {
  const lines = [
    "workerbase: self-hosted serverless functions on Cloudflare's workerd",
    "",
    "Usage: workerbase <noun> <verb> [arguments] [flags]",
  ];
  const groupOf = (c: Command) => {
    const noun = c.name.split(" ")[0];
    if (noun === "keys") return "projects";
    if (noun === "push") return "pull";
    return noun;
  };
  for (const [noun, title] of groups) {
    lines.push("", `${title}:`);
    for (const c of commands.filter((c) => groupOf(c) === noun)) {
      lines.push(`  ${c.name} ${c.usage}`.trimEnd(), `      ${c.summary}`);
    }
  }
  lines.push(
    "",
    "Every command talking to a server takes:",
    ...flagLines(globalFlags).filter((l) => !l.includes("--help")),
    "Read commands take --json, which prints the API's JSON unchanged.",
    "",
    "Exit codes: 0 success; 1 failed (the reason is one line on stderr; an invoke that gets a",
    "non-2xx, a failed deploy or push); 2 bad usage (unknown command or flag, missing argument).",
    'Colour only on a terminal, never with NO_COLOR. "workerbase <command> --help" shows its flags.',
    "",
  );
  return lines.join("\n");
}

function commandHelp(c: Command): string {
  return [
    `workerbase ${c.name} ${c.usage}`.trimEnd(),
    "",
    `  ${c.summary}`,
    "",
    "Flags:",
    ...flagLines(c.flags),
    // serve and dev run a server here; the others talk to one.
    ...flagLines(c.name === "serve" || c.name === "dev" ? { help: globalFlags.help } : globalFlags),
    "",
  ].join("\n");
}

/** Flags that may come before the command's name and take a value. */
const leadingValueFlags = new Set(["--url", "--api-key", "--data-dir", "--admin-key"]);

/** The command that `args` names, and the arguments around its name. */
function find(args: string[]): { command: Command; rest: string[] } {
  const at: number[] = [];
  for (let i = 0; i < args.length && at.length < 2; i++) {
    if (leadingValueFlags.has(args[i])) i++;
    else if (!args[i].startsWith("-")) at.push(i);
  }
  const words = at.map((i) => args[i]);
  const rest = (n: number) => args.filter((_, i) => !at.slice(0, n).includes(i));
  const two = words.join(" ");
  const pair = commands.find((c) => c.name === two);
  if (pair) return { command: pair, rest: rest(2) };
  const one = commands.find((c) => c.name === words[0]);
  if (one) return { command: one, rest: rest(1) };
  const names = commands.map((c) => c.name);
  const nouns = [...new Set(names.map((n) => n.split(" ")[0]))];
  const noun = words[0] ?? "";
  if (nouns.includes(noun)) {
    const verbs = names.filter((n) => n.startsWith(`${noun} `));
    if (words.length < 2) {
      throw new UsageError(
        `"workerbase ${noun}" needs a verb: ${verbs.map((v) => v.split(" ")[1]).join(", ")}`,
      );
    }
    const guess = closest(two, verbs);
    throw new UsageError(
      `unknown command "${two}"` +
        (guess ? `; did you mean "${guess}"?` : `; try: ${verbs.join(", ")}`),
    );
  }
  const guess = closest(two, names) ?? closest(noun, nouns);
  throw new UsageError(
    `unknown command "${noun}"` +
      (guess ? `; did you mean "${guess}"?` : `; see "workerbase --help"`),
  );
}

async function run(args: string[]): Promise<number> {
  const first = args[0];
  if (!first || first === "--help" || first === "-h" || first === "help") {
    process.stdout.write(usage());
    return 0;
  }
  if (first === "--version" || first === "-v") {
    process.stdout.write(`workerbase ${version()}\n`);
    return 0;
  }
  const { command, rest } = find(args);
  const parsed = parseArgs(rest, command.flags, command.name);
  parsed.raw = rest;
  if (parsed.flags.help) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  const [min, max] = command.args;
  if (parsed.positionals.length < min) {
    throw new UsageError(`missing argument: workerbase ${command.name} ${command.usage}`);
  }
  if (parsed.positionals.length > max) {
    throw new UsageError(
      `unexpected argument "${parsed.positionals[max]}": workerbase ${command.name} ${command.usage}`,
    );
  }
  return (await command.run(parsed)) ?? 0;
}

/** Entry point of the `workerbase` command; resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  try {
    return await run(args);
  } catch (e) {
    if (e instanceof UsageError) {
      err.line(`${err.paint.red("error:")} ${e.message}`);
      return 2;
    }
    if (e instanceof CliError) {
      err.line(`${err.paint.red("error:")} ${e.message}`);
      return e.exitCode;
    }
    throw e;
  }
}
