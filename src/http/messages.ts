// Zod's issues in plain words ("must not be empty", "must be a whole number from 1 to 300"),
// for every 400 the API answers and every check the CLI runs with the server's schemas.
import { z } from "zod";

/** A path as a field name: "runtime_config.timeout", "schedules.0.cron"; the root is "body". */
export function fieldOf(path: readonly PropertyKey[]): string {
  return path.map(String).join(".") || "body";
}

type AnyIssue = z.core.$ZodIssue | z.core.$ZodRawIssue;

/**
 * An issue in plain words, from the issue's own data: "must not be empty", "must be a whole
 * number from 1 to 300", "is required", "must be one of: text, json".
 */
export function plainMessage(issue: AnyIssue): string {
  switch (issue.code) {
    case "invalid_type": {
      if (issue.input === undefined || issue.expected === "nonoptional") return "is required";
      if (["never", "undefined", "void"].includes(issue.expected)) return "must not be given";
      const want =
        issue.expected === "number" || issue.expected === "int"
          ? numberRule(schemaOf(issue), issue.expected === "int")
          : (typeNames[issue.expected] ?? `a ${issue.expected}`);
      const got = kindOf(issue.input);
      return sameKind(issue.expected, issue.input)
        ? `must be ${want}`
        : `must be ${want}, not ${got}`;
    }
    case "too_small":
    case "too_big":
      return sizeRule(issue);
    case "invalid_format":
      return formatRule(issue);
    case "not_multiple_of":
      return `must be a multiple of ${issue.divisor}`;
    case "unrecognized_keys":
      return issue.keys.length === 1
        ? `unknown field "${issue.keys[0]}"`
        : `unknown fields ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
    case "invalid_union":
      return unionRule(issue);
    case "invalid_key":
      return `has a key that ${subMessage(issue.issues)}`;
    case "invalid_element":
      return `has an entry that ${subMessage(issue.issues)}`;
    case "invalid_value":
      return issue.values.length === 1
        ? `must be ${shown(issue.values[0])}`
        : `must be one of: ${issue.values.map((v) => shown(v, false)).join(", ")}`;
    default:
      return "is not valid";
  }
}

// Plain words take the place of zod's English defaults ("Too small: expected string to have
// >=1 characters") for every schema in the process: `customError` ranks below every message a
// schema sets itself (`z.string().min(8, "at least 8 characters")`, `ctx.addIssue({message})`,
// a refine's text) and above zod's locale, so zod itself keeps an author's words as they are,
// with no guessing from the text. Set when this module loads: validate.ts imports it, and the
// schema modules import validate.ts, so the API, the workflow definition check and the CLI's
// function.yaml check all read the same words.
z.config({ customError: plainMessage });

const typeNames: Record<string, string> = {
  string: "a string",
  boolean: "true or false",
  bigint: "a whole number",
  symbol: "a symbol",
  null: "null",
  object: "a JSON object",
  record: "a JSON object",
  map: "a JSON object",
  array: "an array",
  tuple: "an array",
  set: "an array",
  date: "a date",
  file: "a file",
  nan: "NaN",
  function: "a function",
};

/** What a value is, as the end of "must be a string, not …". */
export function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number") return Number.isFinite(value) ? "a number" : String(value);
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

/** True when the value has the expected JSON kind and only a finer rule failed (1.5 for an int). */
function sameKind(expected: string, input: unknown): boolean {
  if (expected === "int") return typeof input === "number" && Number.isFinite(input);
  return false;
}

/** The schema that raised an issue: present on the raw issues the error map sees. */
function schemaOf(issue: AnyIssue): z.core.$ZodType | undefined {
  const raw = issue as { schema?: z.core.$ZodType; inst?: unknown };
  return raw.schema;
}

/**
 * A number schema's whole rule from its checks, so each failure states all of it: "a whole
 * number from 1 to 300", "a number greater than 0", "a number".
 */
function numberRule(schema: z.core.$ZodType | undefined, whole: boolean): string {
  let min: { value: number; inclusive: boolean } | undefined;
  let max: { value: number; inclusive: boolean } | undefined;
  for (const check of schema?._zod.def.checks ?? []) {
    const def = check._zod.def as {
      check: string;
      value?: unknown;
      inclusive?: boolean;
      format?: string;
    };
    if (def.check === "number_format" && def.format !== "float32" && def.format !== "float64")
      whole = true;
    if (typeof def.value !== "number") continue;
    const bound = { value: def.value, inclusive: def.inclusive !== false };
    if (def.check === "greater_than" && (!min || bound.value >= min.value)) min = bound;
    if (def.check === "less_than" && (!max || bound.value <= max.value)) max = bound;
  }
  const noun = whole ? "a whole number" : "a number";
  if (min?.inclusive && max?.inclusive) return `${noun} from ${min.value} to ${max.value}`;
  const parts = [
    min && (min.inclusive ? `at least ${min.value}` : `greater than ${min.value}`),
    max && (max.inclusive ? `at most ${max.value}` : `less than ${max.value}`),
  ].filter(Boolean);
  return parts.length ? `${noun} ${parts.join(" and ")}` : noun;
}

const units: Record<string, [string, string]> = {
  string: ["character", "characters"],
  array: ["entry", "entries"],
  set: ["entry", "entries"],
  map: ["entry", "entries"],
  file: ["byte", "bytes"],
};

/** too_small and too_big: a length, a size, a number or a date out of bounds. */
function sizeRule(issue: Extract<AnyIssue, { code: "too_small" | "too_big" }>): string {
  const small = issue.code === "too_small";
  const limit = small
    ? (issue as { minimum: number | bigint }).minimum
    : (issue as { maximum: number | bigint }).maximum;
  const inclusive = issue.inclusive !== false;
  const unit = units[issue.origin];
  if (unit) {
    const count = Number(limit) + (inclusive ? 0 : small ? 1 : -1);
    const amount = `${count} ${count === 1 ? unit[0] : unit[1]}`;
    const verb = issue.origin === "string" || issue.origin === "file" ? "be" : "have";
    if (issue.exact) return `must ${verb} exactly ${amount}`;
    if (small && count === 1 && issue.origin !== "file") return "must not be empty";
    return `must ${verb} ${small ? "at least" : "at most"} ${amount}`;
  }
  if (issue.origin === "date") {
    const at = new Date(Number(limit)).toISOString();
    if (small) return inclusive ? `must be ${at} or later` : `must be later than ${at}`;
    return inclusive ? `must be ${at} or earlier` : `must be earlier than ${at}`;
  }
  const schema = schemaOf(issue);
  if ((issue.origin === "number" || issue.origin === "int") && schema)
    return `must be ${numberRule(schema, issue.origin === "int")}`;
  if (issue.exact) return `must be exactly ${limit}`;
  if (small) return inclusive ? `must be at least ${limit}` : `must be greater than ${limit}`;
  return inclusive ? `must be at most ${limit}` : `must be less than ${limit}`;
}

const formatNames: Record<string, string> = {
  email: "an email address",
  url: "a URL",
  emoji: "an emoji",
  uuid: "a UUID",
  uuidv4: "a UUID (version 4)",
  uuidv6: "a UUID (version 6)",
  uuidv7: "a UUID (version 7)",
  guid: "a GUID",
  nanoid: "a nanoid",
  cuid: "a cuid",
  cuid2: "a cuid2",
  ulid: "a ULID",
  xid: "an XID",
  ksuid: "a KSUID",
  datetime: "an ISO 8601 date and time, such as 2025-01-31T09:30:00Z",
  date: "an ISO 8601 date, such as 2025-01-31",
  time: "an ISO 8601 time, such as 09:30:00",
  duration: "an ISO 8601 duration, such as P1DT2H",
  ipv4: "an IPv4 address",
  ipv6: "an IPv6 address",
  mac: "a MAC address",
  cidrv4: "an IPv4 range, such as 10.0.0.0/8",
  cidrv6: "an IPv6 range, such as fd00::/8",
  base64: "base64 text",
  base64url: "base64url text",
  json_string: "a JSON text",
  e164: "a phone number in E.164 form, such as +15551234567",
  jwt: "a JWT",
  hex: "hexadecimal text",
  lowercase: "lowercase",
  uppercase: "uppercase",
};

/** invalid_format: a string that is not the email, URL, pattern... asked for. */
function formatRule(issue: Extract<AnyIssue, { code: "invalid_format" }>): string {
  const data = issue as {
    format: string;
    pattern?: string;
    prefix?: string;
    suffix?: string;
    includes?: string;
  };
  switch (data.format) {
    case "starts_with":
      return `must start with "${data.prefix}"`;
    case "ends_with":
      return `must end with "${data.suffix}"`;
    case "includes":
      return `must contain "${data.includes}"`;
    case "regex":
      return data.pattern
        ? `must match the pattern ${data.pattern}`
        : "is not in the accepted form";
    default:
      return formatNames[data.format]
        ? `must be ${formatNames[data.format]}`
        : `must be a valid ${data.format}`;
  }
}

/** A value as a user would type it: strings quoted in a sentence, bare in a list. */
function shown(value: unknown, quoted = true): string {
  if (typeof value === "string") return quoted ? JSON.stringify(value) : value;
  if (typeof value === "bigint") return value.toString();
  return String(value);
}

/** The first sub-issue of a key or element, as the rest of a sentence ("that must not be empty"). */
function subMessage(issues: readonly z.core.$ZodIssue[]): string {
  const first = issues[0];
  if (!first) return "is not valid";
  return first.path.length ? `${fieldOf(first.path)} ${first.message}` : first.message;
}

/**
 * The branch of a failed union that came closest: the one whose value had the right kind and
 * failed on fewest points. Null when the value matched no branch's kind at all.
 */
export function closestBranch(
  branches: readonly (readonly z.core.$ZodIssue[])[],
): readonly z.core.$ZodIssue[] | null {
  const wrongKind = (issues: readonly z.core.$ZodIssue[]) =>
    issues.every(
      (i) => i.path.length === 0 && (i.code === "invalid_type" || i.code === "invalid_value"),
    );
  let best: readonly z.core.$ZodIssue[] | null = null;
  for (const issues of branches)
    if (issues.length > 0 && !wrongKind(issues) && (!best || issues.length < best.length))
      best = issues;
  return best;
}

/** invalid_union: the closest branch's problem, or every accepted kind ("a string or null"). */
function unionRule(issue: Extract<AnyIssue, { code: "invalid_union" }>): string {
  const data = issue as {
    errors: z.core.$ZodIssue[][];
    discriminator?: string;
    options?: unknown[];
    inclusive?: boolean;
  };
  if (data.inclusive === false) return "matches more than one accepted shape";
  if (data.discriminator && data.options?.length)
    return `must have "${data.discriminator}" set to one of: ${data.options.map((o) => shown(o, false)).join(", ")}`;
  const best = closestBranch(data.errors ?? []);
  if (best) {
    const first = best[0];
    return first.path.length ? `${fieldOf(first.path)}: ${first.message}` : first.message;
  }
  const kinds: string[] = [];
  for (const issues of data.errors ?? [])
    for (const i of issues) {
      const kind =
        i.code === "invalid_type"
          ? i.expected === "number" || i.expected === "int"
            ? i.expected === "int"
              ? "a whole number"
              : "a number"
            : typeNames[i.expected]
          : i.code === "invalid_value"
            ? i.values.map((v) => shown(v)).join(" or ")
            : undefined;
      if (kind && !kinds.includes(kind)) kinds.push(kind);
    }
  if (kinds.length === 0) return "does not have an accepted shape";
  const list =
    kinds.length === 1 ? kinds[0] : `${kinds.slice(0, -1).join(", ")} or ${kinds.at(-1)}`;
  // A finished issue no longer holds its input; the message must read the same from both.
  return issue.input === undefined
    ? `must be ${list}`
    : `must be ${list}, not ${kindOf(issue.input)}`;
}
