// Checks for headers users configure (subscription headers, workflow webhook node headers),
// made where they enter so a value the transport cannot carry is a 400, not a failure later.

/** An HTTP header name (an RFC 9110 token), at most 128 characters. */
export const headerNamePattern = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/;

/**
 * Why `value` cannot be sent as (part of) an HTTP header, as the end of a sentence, or null
 * when it can. Stricter than node's `http.validateHeaderValue` (which also lets Latin-1
 * bytes through, which receivers read differently): printable ASCII and tabs only.
 */
export function headerValueProblem(value: string): string | null {
  const bad = /[^\t\x20-\x7e]/.exec(value);
  if (!bad) return null;
  const char = bad[0];
  const code = char.codePointAt(0)!;
  const what =
    char === "\r" || char === "\n"
      ? "a line break"
      : code < 0x20 || code === 0x7f
        ? `a control character (U+${code.toString(16).toUpperCase().padStart(4, "0")})`
        : `"${String.fromCodePoint(code)}"`;
  return `contains ${what}, which an HTTP header cannot carry; use printable ASCII only`;
}

/** `X-Workerbase-*`: headers Workerbase uses between its own parts; users may never set them. */
export function isWorkerbaseHeader(name: string): boolean {
  return name.toLowerCase().startsWith("x-workerbase-");
}

/**
 * What is wrong with configured headers, one sentence per header at fault: names that are not
 * header names or are `X-Workerbase-*`, and values no header can carry. Empty when all is well.
 */
export function headerIssues(headers: Record<string, string>): { name: string; message: string }[] {
  const issues: { name: string; message: string }[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (!headerNamePattern.test(name))
      issues.push({
        name,
        message:
          "not a valid header name: use letters, digits and - _ . ! # $ % & ' * + ^ ` | ~, at most 128",
      });
    else if (isWorkerbaseHeader(name))
      issues.push({
        name,
        message: "X-Workerbase-* headers are Workerbase's own and cannot be set",
      });
    const problem = headerValueProblem(value);
    if (problem) issues.push({ name, message: problem });
  }
  return issues;
}
