import { Cron } from "croner";

// The five fields of a standard cron expression, in order, and what each accepts.
const fields = [
  { name: "minute", accepts: "0 to 59" },
  { name: "hour", accepts: "0 to 23" },
  { name: "day of month", accepts: "1 to 31" },
  { name: "month", accepts: "1 to 12, or JAN to DEC" },
  { name: "day of week", accepts: "0 to 7 (0 and 7 are Sunday), or SUN to SAT" },
];
// croner's own names for those fields, as its messages use them.
const cronerField: Record<string, number> = {
  minute: 0,
  hour: 1,
  day: 2,
  month: 3,
  dayOfWeek: 4,
};

/** croner's message about an expression, said for someone who does not read cron daily. */
function plain(message: string, parts: string[]): string {
  let m = /Invalid value for (\w+)/.exec(message);
  if (m && m[1] in cronerField) {
    const i = cronerField[m[1]];
    return `The ${fields[i].name} field "${parts[i]}" is out of range: it takes ${fields[i].accepts}.`;
  }
  m = /configuration entry (\d+) \((.*)\) contains illegal characters/.exec(message);
  if (m && fields[Number(m[1]) - 1]) {
    const i = Number(m[1]) - 1;
    return `The ${fields[i].name} field "${m[2]}" has characters cron does not read: it takes ${fields[i].accepts}, with *, commas, ranges (1-5) and steps (*/15).`;
  }
  m = /configuration entry (\w+) \(\) is empty/.exec(message);
  if (m && m[1] in cronerField)
    return `The ${fields[cronerField[m[1]]].name} field has an empty item: look for two commas in a row or a comma at the end.`;
  if (/illegal stepping: 0/.test(message)) return "A step (the number after /) must be 1 or more.";
  m = /From value is larger than to value: '(.*)'/.exec(message);
  if (m) return `The range ${m[1]} runs backwards: put the smaller number first.`;
  m = /steps cannot be greater than maximum value of part \((\d+)\)/.exec(message);
  if (m) return `A step (the number after /) cannot be more than ${m[1]} in that field.`;
  const text = message.replace(/^\w+:\s*/, "").replace(/^Syntax error,\s*/, "");
  return text.charAt(0).toUpperCase() + text.slice(1).replace(/\.?$/, ".");
}

/** Whether the browser knows `zone` as an IANA time zone. */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The time zones to offer in a list: UTC first, then the browser's IANA names. */
export function timeZones(): string[] {
  const names =
    typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return ["UTC", ...names.filter((z) => z !== "UTC")];
}

export type NextRuns = { runs: Date[]; error?: undefined } | { runs?: undefined; error: string };

/**
 * The next `count` times a standard 5-field expression fires in `timezone`, computed in the
 * browser with croner (as the server schedules them), or why it cannot be read.
 */
export function nextRuns(expression: string, timezone: string, count = 5): NextRuns {
  const text = expression.trim();
  if (!text)
    return { error: "Enter a cron expression, for example */15 * * * * (every 15 minutes)." };
  const parts = text.split(/\s+/);
  if (!text.startsWith("@") && parts.length !== 5)
    return {
      error: `A cron expression has five fields separated by spaces (minute, hour, day of month, month, day of week); this one has ${parts.length}.`,
    };
  if (!isTimeZone(timezone))
    return {
      error: `"${timezone}" is not a time zone this browser knows: pick one from the list, such as Europe/Berlin or America/New_York.`,
    };
  let runs: Date[];
  try {
    runs = new Cron(text, { timezone, mode: "5-part", paused: true }).nextRuns(count);
  } catch (err) {
    return { error: plain((err as Error).message, parts) };
  }
  if (runs.length === 0)
    return { error: "This expression never matches a date (like 30 February)." };
  return { runs };
}
