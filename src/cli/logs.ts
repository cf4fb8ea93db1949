import { UsageError, intFlag, stringFlag } from "./args.js";
import { jsonFlag, seg, sleep, type Command } from "./command.js";
import { platform } from "./http.js";
import { out } from "./output.js";
import { notFound } from "./functions.js";

/** An invocation record as the API renders it (the fields the CLI reads). */
export interface Invocation {
  id: string;
  status: "success" | "failed";
  status_code: number;
  duration_ms: number;
  error_message: string | null;
  /** An uncaught error's stack, the user's frames only (older servers: absent). */
  error_stack?: string | null;
  /** What was called: the method and the part after `/invoke`, with the query. */
  method?: string;
  path?: string;
  version?: number | null;
  logs: { level: string; message: string; timestamp: string }[];
  trigger: string;
  created_at: string;
}

/** How often `--follow` asks for new records. */
const followIntervalMs = 400;

function indent(text: string, prefix: string): string {
  return text.replace(/\n/g, `\n${" ".repeat(prefix.length)}`);
}

/** One invocation and its console lines, as a few readable lines. */
export function formatInvocation(r: Invocation): string {
  const p = out.paint;
  const time = r.created_at.replace("T", " ").replace(/\.\d+Z$/, "Z");
  const mark = r.status === "success" ? p.green("✓") : p.red("✗");
  const code = r.status === "success" ? String(r.status_code) : p.red(String(r.status_code));
  const called = r.method ? `  ${r.method} ${r.path ?? "/"}` : "";
  const version = r.version ? `  v${r.version}` : "";
  const lines = [
    `${p.dim(time)}  ${mark} ${code}${called}  ${r.duration_ms} ms${version}  ${r.trigger}  ${p.dim(r.id)}`,
  ];
  const levelPaint: Record<string, (s: string) => string> = {
    warn: p.yellow,
    error: p.red,
    debug: p.dim,
  };
  for (const line of r.logs) {
    const tag = `  ${line.level.padEnd(5)} `;
    lines.push((levelPaint[line.level] ?? ((s: string) => s))(tag) + indent(line.message, tag));
  }
  // The stack starts with the error's name and message, so it replaces the message line.
  const stack = r.error_stack?.trimEnd();
  if (stack && (!r.error_message || stack.includes(r.error_message))) {
    lines.push(p.red(`  ✗ ${indent(stack, "    ")}`));
  } else if (r.error_message) {
    lines.push(p.red(`  ✗ ${indent(r.error_message, "    ")}`));
    if (stack) lines.push(p.red(`    ${indent(stack, "    ")}`));
  }
  return lines.join("\n");
}

/** Oldest first, as a log reads. */
function chronological(records: Invocation[]): Invocation[] {
  return [...records].sort((a, b) => a.created_at.localeCompare(b.created_at));
}

export const logsCommand: Command = {
  name: "functions logs",
  usage: "<fn> [--status success|failed] [--limit n] [--follow] [--json]",
  summary: "recent invocations with their console lines; --follow waits for new ones",
  args: [1, 1],
  flags: {
    ...jsonFlag,
    status: { type: "string", value: "success|failed", help: "only these invocations" },
    limit: { type: "string", value: "n", help: "how many (1..100, default 20)" },
    follow: {
      type: "boolean",
      alias: "f",
      help: "keep printing new invocations until interrupted (with --json: one JSON record a line)",
    },
  },
  async run(args) {
    const fn = args.positionals[0];
    const status = stringFlag(args, "status");
    if (status !== undefined && status !== "success" && status !== "failed") {
      throw new UsageError(`--status must be success or failed, got "${status}"`);
    }
    const limit = intFlag(args, "limit", 1, 100);
    const api = platform(args);
    const fetchPage = (n: number | undefined) =>
      api.call<{ data: Invocation[] }>("GET", `/functions/${seg(fn)}/invocations`, {
        query: { status, limit: n },
        notFound: notFound(fn),
      });
    const first = await fetchPage(limit);
    const print = (r: Invocation) =>
      args.flags.json ? out.line(JSON.stringify(r)) : out.line(formatInvocation(r));

    if (!args.flags.follow) {
      if (args.flags.json) return out.json(first);
      if (first.data.length === 0) out.line("No invocations yet.");
      for (const r of chronological(first.data)) print(r);
      return;
    }

    for (const r of chronological(first.data)) print(r);
    let seen = new Set(first.data.map((r) => r.id));
    let stopped = false;
    const stop = () => (stopped = true);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
      while (!stopped) {
        await sleep(followIntervalMs);
        if (stopped) break;
        const page = await fetchPage(100);
        for (const r of chronological(page.data.filter((r) => !seen.has(r.id)))) print(r);
        // Only the newest page can hold records not printed yet.
        seen = new Set(page.data.map((r) => r.id));
      }
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
    return 0;
  },
};
