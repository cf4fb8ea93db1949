import { Cron } from "croner";
import { z } from "zod";
import { defaults } from "../host/config.js";
import { tooDeep } from "../http/validate.js";

/** Most schedule entries one function (or cron triggers one workflow) may have. */
export const maxSchedules = 10;

/**
 * Why `expression` is not a standard 5-field cron expression, in plain words, or null. The
 * parsing is croner's; only the field count is checked here first, because croner would also
 * take 6- and 7-field forms (seconds, years) and nicknames (`@daily`) that Cloudflare's cron
 * triggers do not.
 */
export function cronProblem(expression: string): string | null {
  const fields = expression.trim().split(/\s+/).filter(Boolean);
  if (fields.length !== 5) {
    return `must have 5 fields (minute hour day-of-month month day-of-week), not ${fields.length}`;
  }
  try {
    new Cron(expression, { mode: "5-part", paused: true });
    return null;
  } catch (err) {
    return (err as Error).message
      .replace(/^CronPattern:\s*/, "")
      .replace(/^\w/, (c) => c.toLowerCase());
  }
}

/** True when `zone` is an IANA time zone this runtime knows. */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const CronExpression = z
  .string()
  .max(200, "must be at most 200 characters")
  .superRefine((value, ctx) => {
    const problem = cronProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

const TimeZone = z
  .string()
  .max(100, "must be at most 100 characters")
  .refine(isTimeZone, "must be an IANA time zone such as UTC or Europe/Berlin");

/** One entry of a function's `schedules`. */
export const ScheduleEntry = z.strictObject({
  cron: CronExpression,
  timezone: TimeZone.optional(),
  body: z
    .unknown()
    .refine((v) => v === undefined || JSON.stringify(v).length <= 64 * 1024, {
      message: "must be at most 64 KiB as JSON",
    })
    .refine((v) => tooDeep(v, defaults.maxJsonDepth) === null, {
      message: `must not nest deeper than ${defaults.maxJsonDepth} levels`,
    })
    .optional(),
});

export const Schedules = z
  .array(ScheduleEntry)
  .max(maxSchedules, `a function may have at most ${maxSchedules} schedules`);

/** A workflow's `{type: "cron", cron, timezone?}` trigger. */
export const CronTrigger = z.strictObject({
  type: z.literal("cron"),
  cron: CronExpression,
  timezone: TimeZone.optional(),
});

export interface Schedule {
  cron: string;
  timezone: string;
  body: unknown;
}

/** A stored entry with its defaults filled in. */
export function normalize(entry: z.infer<typeof ScheduleEntry>): Schedule {
  return { cron: entry.cron.trim(), timezone: entry.timezone ?? "UTC", body: entry.body ?? {} };
}

/** The next `count` times (epoch ms) after `fromMs` at which `cron` fires in `timezone`. */
export function nextRuns(cron: string, timezone: string, fromMs: number, count = 1): number[] {
  try {
    return new Cron(cron, { timezone, mode: "5-part", paused: true })
      .nextRuns(count, new Date(fromMs))
      .map((d) => d.getTime());
  } catch {
    return []; // stored entries were checked when set; a zone removed from ICU since fires never
  }
}

/**
 * A compiled expression, to compute many next times without parsing it each time; null for
 * one that no longer parses (a zone removed from ICU since it was set): it never fires.
 */
export function compile(cron: string, timezone: string): Cron | null {
  try {
    return new Cron(cron, { timezone, mode: "5-part", paused: true });
  } catch {
    return null;
  }
}

/** The first time (epoch ms) after `fromMs` at which `job` fires, or Infinity. */
export function nextAfter(job: Cron | null, fromMs: number): number {
  return job?.nextRun(new Date(fromMs))?.getTime() ?? Infinity;
}

/** The key a tick is claimed under: the entry itself, so an edited list starts afresh. */
export function entryKey(index: number, entry: { cron: string; timezone?: string }): string {
  return `${index}:${entry.timezone ?? "UTC"}:${entry.cron.trim()}`;
}
