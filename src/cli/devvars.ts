import { CliError } from "./args.js";
import { display } from "./manifest.js";

const namePattern = /^[A-Z][A-Z0-9_]*$/;

function unquote(raw: string, file: string, line: number): string {
  const value = raw.trim();
  if (value.startsWith('"')) {
    const m = /^"((?:[^"\\]|\\.)*)"\s*(?:#.*)?$/.exec(value);
    if (!m) throw new CliError(`${display(file)}:${line}: unterminated "quoted" value`);
    return m[1].replace(/\\(.)/g, (_, c: string) =>
      c === "n" ? "\n" : c === "r" ? "\r" : c === "t" ? "\t" : c,
    );
  }
  if (value.startsWith("'")) {
    const m = /^'([^']*)'\s*(?:#.*)?$/.exec(value);
    if (!m) throw new CliError(`${display(file)}:${line}: unterminated 'quoted' value`);
    return m[1];
  }
  return value.replace(/\s+#.*$/, "");
}

/**
 * Parses a `.dev.vars` file (dotenv style, as wrangler reads it): `NAME=value` lines,
 * `# comments`, optional `export `, single or double quotes (double quotes know \n, \t).
 */
export function parseDevVars(text: string, file: string): Map<string, string> {
  const vars = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^(?:export\s+)?([^=\s]+)\s*=(.*)$/.exec(line);
    if (!m) throw new CliError(`${display(file)}:${i + 1}: expected NAME=value`);
    const name = m[1];
    if (!namePattern.test(name) || name === "KV" || name === "DB") {
      throw new CliError(
        `${display(file)}:${i + 1}: "${name}" cannot be a secret name (upper case letters, digits and _, not KV or DB)`,
      );
    }
    vars.set(name, unquote(m[2], file, i + 1));
  });
  return vars;
}
