import { UsageError, stringFlag, type ParsedArgs } from "./args.js";
import { jsonFlag, seg, type Command } from "./command.js";
import { platform } from "./http.js";
import { out } from "./output.js";
import { nextRuns } from "../schedules/cron.js";
import { notFound, type FunctionResource, type Schedule } from "./functions.js";

/** How many upcoming run times `functions schedules` shows per entry. */
const runsShown = 3;

/** An entry as PATCH takes it: what the API renders, without the computed `next_run_at`. */
function input(s: Schedule): { cron: string; timezone: string; body: unknown } {
  return { cron: s.cron, timezone: s.timezone, body: s.body };
}

/** `2025-06-01 10:05 (UTC+02:00)` or `... (UTC)`: the wall-clock time in the entry's zone, and its offset. */
function formatRun(date: Date, timezone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
      timeZoneName: "longOffset",
    })
      .formatToParts(date)
      .map((p) => [p.type, p.value]),
  );
  // "GMT+02:00", or "GMT" (on some ICU builds "GMT+00:00") for no offset.
  const offset = parts.timeZoneName.replace(/^GMT(?:[+-]00:00)?$/, "UTC").replace(/^GMT/, "UTC");
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} (${offset})`;
}

function entryLines(s: Schedule, index: number): string[] {
  const p = out.paint;
  return [
    `  [${index}] ${p.bold(s.cron)}  ${s.timezone}  body ${JSON.stringify(s.body)}`,
    // Computed here with the scheduler's own cron math, from this machine's clock.
    `      next: ${
      nextRuns(s.cron, s.timezone, Date.now(), runsShown)
        .map((ms) => formatRun(new Date(ms), s.timezone))
        .join(", ") || "never"
    }`,
  ];
}

const addHint = (slug: string) =>
  `workerbase functions schedules ${slug} --add "*/5 * * * *" [--timezone Europe/Berlin] [--body JSON]`;

type Entry = { cron: string; timezone?: string; body?: unknown };
type Edit = { add: Entry } | { remove: string } | undefined;

/** What `--add` or `--remove` asks for (checked before anything is sent), or nothing. */
function editFrom(args: ParsedArgs): Edit {
  const add = stringFlag(args, "add");
  const remove = stringFlag(args, "remove");
  const timezone = stringFlag(args, "timezone");
  const bodyText = stringFlag(args, "body");
  if (add !== undefined && remove !== undefined) {
    throw new UsageError("--add and --remove cannot be used together");
  }
  if (add === undefined && (timezone !== undefined || bodyText !== undefined)) {
    throw new UsageError("--timezone and --body go with --add");
  }
  if (remove !== undefined) return { remove };
  if (add === undefined) return undefined;
  let body: unknown;
  if (bodyText !== undefined) {
    try {
      body = JSON.parse(bodyText);
    } catch {
      throw new UsageError(`--body must be JSON, got ${JSON.stringify(bodyText)}`);
    }
  }
  // Only what was given: the server fills in its defaults (UTC, {}).
  return {
    add: {
      cron: add,
      ...(timezone !== undefined ? { timezone } : {}),
      ...(body !== undefined ? { body } : {}),
    },
  };
}

/** The whole new list after `edit`, and a few words saying what changed. */
function apply(edit: NonNullable<Edit>, fn: FunctionResource): { schedules: Entry[]; did: string } {
  const current = (fn.schedules ?? []).map(input);
  if ("add" in edit) {
    return { schedules: [...current, edit.add], did: `added schedule [${current.length}]` };
  }
  const index = Number(edit.remove);
  if (!/^\d+$/.test(edit.remove) || index >= current.length) {
    throw new UsageError(
      current.length === 0
        ? `${fn.slug} has no schedules to remove`
        : `--remove takes the index of a schedule (0..${current.length - 1}), got "${edit.remove}"`,
    );
  }
  return {
    schedules: current.filter((_, i) => i !== index),
    did: `removed schedule [${index}] (${current[index].cron})`,
  };
}

export const schedulesCommand: Command = {
  name: "functions schedules",
  usage: "<fn> [--add cron [--timezone tz] [--body JSON] | --remove index] [--json]",
  summary: "the function's cron triggers with their next run times; add or remove one",
  args: [1, 1],
  flags: {
    ...jsonFlag,
    add: {
      type: "string",
      value: "cron",
      help: 'add an entry: 5 fields, minute hour day month weekday ("0 9 * * MON-FRI")',
    },
    timezone: { type: "string", value: "tz", help: "the entry's IANA time zone (default UTC)" },
    body: { type: "string", value: "JSON", help: "what the handler receives as POST (default {})" },
    remove: { type: "string", value: "index", help: "remove the entry with this index" },
  },
  async run(args) {
    const fn = args.positionals[0];
    const edit = editFrom(args);
    const api = platform(args);
    let { data } = await api.call<{ data: FunctionResource }>("GET", `/functions/${seg(fn)}`, {
      notFound: notFound(fn),
    });
    const change = edit && apply(edit, data);
    if (change) {
      // The whole list is sent: PATCH replaces it.
      ({ data } = await api.call<{ data: FunctionResource }>(
        "PATCH",
        `/functions/${seg(data.id)}`,
        {
          json: { function: { schedules: change.schedules } },
          notFound: notFound(fn),
        },
      ));
    }
    const schedules = data.schedules ?? [];
    // The schedules as the API rendered them (the function resource has code and more).
    if (args.flags.json) return out.json({ data: schedules });
    if (change) out.line(`${out.paint.green("✓")} ${change.did} of ${data.slug}`);
    if (schedules.length === 0) {
      out.line(`${data.slug} has no schedules; add one with: ${addHint(data.slug)}`);
      return;
    }
    out.line(`Schedules of ${data.slug}:`);
    schedules.forEach((s, i) => out.line(entryLines(s, i).join("\n")));
    if (data.live_version === null) {
      out.line(out.paint.yellow(`${data.slug} is not deployed: no schedule runs until it is`));
    }
  },
};
