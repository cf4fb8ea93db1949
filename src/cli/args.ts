/** A flag a command accepts: a switch, a value, or a value that may be given several times. */
export interface FlagSpec {
  type: "boolean" | "string" | "list";
  /** One-letter form, such as `X` for `-X`. */
  alias?: string;
  /** Placeholder shown in help, such as `s` for `--timeout s`. */
  value?: string;
  help: string;
}

export type Flags = Record<string, FlagSpec>;

export interface ParsedArgs {
  /** The arguments after the command's name, as given. */
  raw?: string[];
  positionals: string[];
  flags: Record<string, string | boolean | string[] | undefined>;
}

/** Bad command-line input: reported in one line, exit code 2. */
export class UsageError extends Error {}

/** A command that failed for a reason the user should read: one line on stderr, exit code 1. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Flags every command understands. */
export const globalFlags: Flags = {
  url: {
    type: "string",
    value: "URL",
    help: "server (WORKERBASE_URL, default http://127.0.0.1:8787)",
  },
  "api-key": { type: "string", value: "KEY", help: "project key (WORKERBASE_API_KEY)" },
  "data-dir": {
    type: "string",
    value: "DIR",
    help: "where the saved key is found (WORKERBASE_DATA_DIR, default ./.workerbase)",
  },
  help: { type: "boolean", alias: "h", help: "show help" },
};

/** Edit distance, for "did you mean" suggestions. */
export function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = next;
    }
  }
  return row[b.length];
}

/** The candidate closest to `word`, when it is close enough to be a likely typo. */
export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const candidate of candidates) {
    const score = candidate.startsWith(word) && word.length >= 2 ? 0.5 : distance(word, candidate);
    if (score < bestScore) {
      best = candidate;
      bestScore = score;
    }
  }
  return bestScore <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

/**
 * Parses `argv` against a command's flags (plus the global ones). Flags may come anywhere,
 * as `--name value`, `--name=value` or `-X value`; `--` ends them. An unknown flag is a
 * UsageError that suggests the closest known one.
 */
export function parseArgs(argv: string[], flags: Flags, command: string): ParsedArgs {
  const all: Flags = { ...globalFlags, ...flags };
  const byAlias = new Map(
    Object.entries(all)
      .filter(([, spec]) => spec.alias)
      .map(([name, spec]) => [spec.alias!, name]),
  );
  const result: ParsedArgs = { positionals: [], flags: {} };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      result.positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--") && arg.length > 2) {
      const eq = arg.indexOf("=");
      name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
    } else if (/^-[A-Za-z]$/.test(arg)) {
      name = byAlias.get(arg.slice(1));
      if (!name) throw new UsageError(unknownFlag(arg, all, command));
    } else {
      result.positionals.push(arg);
      continue;
    }
    const spec = all[name];
    if (!spec) throw new UsageError(unknownFlag(arg.split("=")[0], all, command));
    if (spec.type === "boolean") {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      result.flags[name] = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) {
      throw new UsageError(`--${name} needs a value${spec.value ? ` (${spec.value})` : ""}`);
    }
    if (spec.type === "list") {
      const list = (result.flags[name] as string[] | undefined) ?? [];
      list.push(value);
      result.flags[name] = list;
    } else {
      result.flags[name] = value;
    }
  }
  return result;
}

function unknownFlag(flag: string, flags: Flags, command: string): string {
  const names = Object.keys(flags).map((n) => `--${n}`);
  const suggestion = closest(flag.startsWith("--") ? flag : `-${flag}`, names);
  return (
    `unknown flag ${flag} for "workerbase ${command}"` +
    (suggestion ? `; did you mean ${suggestion}?` : `; see "workerbase ${command} --help"`)
  );
}

/** A string flag's value, or undefined. */
export function stringFlag(parsed: ParsedArgs, name: string): string | undefined {
  const value = parsed.flags[name];
  return typeof value === "string" ? value : undefined;
}

/** A flag that must be a whole number within a range. */
export function intFlag(
  parsed: ParsedArgs,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const value = stringFlag(parsed, name);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return n;
}
