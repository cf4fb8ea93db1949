/** What `{{vars.x}}`, `{{context.x}}` and `{{system.x}}` read from. */
export interface TemplateScope {
  vars: Record<string, unknown>;
  context: Record<string, unknown>;
  system: Record<string, unknown>;
}

const reference = String.raw`\{\{\s*(vars|context|system)((?:\.[^.{}\s]+)*)\s*\}\}`;
const whole = new RegExp(`^${reference}$`);
const anywhere = new RegExp(reference, "g");

/** The value at `path` (".a.b", possibly empty) under `root`, or undefined. */
function lookup(scope: TemplateScope, root: keyof TemplateScope, path: string): unknown {
  let value: unknown = scope[root];
  for (const part of path.split(".").slice(1)) {
    if (value === null || typeof value !== "object") return undefined;
    if (!Object.prototype.hasOwnProperty.call(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function asText(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/**
 * Fills the templates of one string. A string that is exactly one template keeps the value's
 * type (a missing path is null); inside longer text values are interpolated (objects as JSON,
 * a missing path as nothing). `{{other.x}}` is left as written.
 */
export function renderString(text: string, scope: TemplateScope): unknown {
  if (!text.includes("{{")) return text;
  const alone = whole.exec(text);
  if (alone) return lookup(scope, alone[1] as keyof TemplateScope, alone[2]) ?? null;
  return text.replace(anywhere, (_, root: keyof TemplateScope, path: string) =>
    asText(lookup(scope, root, path)),
  );
}

/** Fills the templates of every string inside a JSON value (object keys are left alone). */
export function render(value: unknown, scope: TemplateScope): unknown {
  if (typeof value === "string") return renderString(value, scope);
  if (Array.isArray(value)) return value.map((v) => render(v, scope));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = render(v, scope);
    return out;
  }
  return value;
}
