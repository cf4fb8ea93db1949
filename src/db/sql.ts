// A small SQLite lexer: enough to split D1 input into statements the way SQLite's parser
// does, find bound parameters, and recognise the statements D1 does not allow. It never
// decides what SQL means; SQLite does that.

export type TokenKind = "word" | "param" | "string" | "ident" | "semi" | "other";

export interface Token {
  kind: TokenKind;
  text: string;
  start: number;
  end: number;
}

const space = /[ \t\n\f\r]/;
const wordStart = /[A-Za-z_\u0080-\uffff]/;
const wordChar = /[A-Za-z0-9_$\u0080-\uffff]/;

function until(sql: string, from: number, close: string, doubled: boolean): number {
  let i = from;
  for (;;) {
    const at = sql.indexOf(close, i);
    if (at < 0) return sql.length;
    if (doubled && sql[at + 1] === close) {
      i = at + 2;
      continue;
    }
    return at + 1;
  }
}

/** The tokens of `sql`, without whitespace and comments. */
export function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    const start = i;
    let kind: TokenKind = "other";
    if (space.test(c)) {
      i++;
      continue;
    } else if (c === "-" && sql[i + 1] === "-") {
      const nl = sql.indexOf("\n", i);
      i = nl < 0 ? sql.length : nl + 1;
      continue;
    } else if (c === "/" && sql[i + 1] === "*") {
      const close = sql.indexOf("*/", i + 2);
      i = close < 0 ? sql.length : close + 2;
      continue;
    } else if (c === "'") {
      kind = "string";
      i = until(sql, i + 1, "'", true);
    } else if (c === '"' || c === "`") {
      kind = "ident";
      i = until(sql, i + 1, c, true);
    } else if (c === "[") {
      kind = "ident";
      i = until(sql, i + 1, "]", false);
    } else if (c === ";") {
      kind = "semi";
      i++;
    } else if (c === "?") {
      kind = "param";
      i++;
      while (i < sql.length && sql[i] >= "0" && sql[i] <= "9") i++;
    } else if ((c === ":" || c === "@" || c === "$") && wordChar.test(sql[i + 1] ?? "")) {
      kind = "param";
      i++;
      while (i < sql.length && wordChar.test(sql[i])) i++;
    } else if (wordStart.test(c)) {
      kind = "word";
      while (i < sql.length && wordChar.test(sql[i])) i++;
    } else if (c >= "0" && c <= "9") {
      while (i < sql.length && /[0-9A-Za-z_.]/.test(sql[i])) i++;
    } else {
      i++;
    }
    tokens.push({ kind, text: sql.slice(start, i), start, end: i });
  }
  return tokens;
}

/** One statement as SQLite's prepare would take it: text up to and including its `;`. */
export interface Piece {
  /** Offset in the whole input where this piece starts (just after the previous `;`). */
  start: number;
  /** Offset just after this piece (after its `;`, or the end of the input). */
  end: number;
  text: string;
  /** Tokens of the statement itself, without the closing `;`. */
  tokens: Token[];
}

function isWord(token: Token | undefined, ...words: string[]): boolean {
  return token?.kind === "word" && words.includes(token.text.toUpperCase());
}

/**
 * Splits `sql` into statements on `;`, keeping a trigger's `BEGIN ... END` body (where `;`
 * separates the trigger's own statements) in one piece.
 */
export function splitStatements(sql: string): Piece[] {
  const pieces: Piece[] = [];
  let start = 0;
  let current: Token[] = [];
  let trigger = false;
  let inBody = false;
  let caseDepth = 0;
  let bodyClosed = false;
  for (const token of tokenize(sql)) {
    if (token.kind !== "semi") {
      if (current.length === 0) {
        trigger = false;
        inBody = false;
        bodyClosed = false;
        caseDepth = 0;
      }
      current.push(token);
      if (current.length <= 4 && isWord(token, "TRIGGER")) {
        trigger = isWord(current[0], "CREATE");
      } else if (trigger && !inBody && isWord(token, "BEGIN")) {
        inBody = true;
      } else if (inBody && isWord(token, "CASE")) {
        caseDepth++;
      } else if (inBody && isWord(token, "END")) {
        if (caseDepth > 0) caseDepth--;
        else bodyClosed = true;
      }
      continue;
    }
    if (trigger && inBody && !bodyClosed) {
      current.push(token);
      continue;
    }
    pieces.push({ start, end: token.end, text: sql.slice(start, token.end), tokens: current });
    start = token.end;
    current = [];
  }
  if (start < sql.length || pieces.length === 0) {
    pieces.push({ start, end: sql.length, text: sql.slice(start), tokens: current });
  }
  return pieces;
}

/** D1's limit on bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER). */
export const maxVariables = 100;

/** The statement's parameters, numbered as SQLite numbers them. */
export interface Parameters {
  /** sqlite3_bind_parameter_count: the highest parameter number. */
  count: number;
  /** For each number 1..count, the parameter's name (`?3`, `:a`), or null for `?` and gaps. */
  names: (string | null)[];
  /** A parse error SQLite would report for a parameter: message and offset in the piece. */
  error?: { message: string; offset: number };
}

/** Numbers the parameters of one statement: `?` takes the next number, `?NNN` its own. */
export function parameters(tokens: Token[], base = 0): Parameters {
  const byName = new Map<string, number>();
  const names: (string | null)[] = [];
  let count = 0;
  for (const token of tokens) {
    if (token.kind !== "param") continue;
    let index: number;
    if (token.text === "?") {
      index = count + 1;
    } else if (token.text[0] === "?") {
      index = Number(token.text.slice(1));
      if (!Number.isInteger(index) || index < 1 || index > maxVariables) {
        return {
          count,
          names,
          error: {
            message: `variable number must be between ?1 and ?${maxVariables}`,
            offset: token.start - base,
          },
        };
      }
    } else {
      index = byName.get(token.text) ?? count + 1;
    }
    if (index > maxVariables) {
      return {
        count,
        names,
        error: { message: "too many SQL variables", offset: token.start - base },
      };
    }
    if (token.text !== "?" && !byName.has(token.text)) {
      byName.set(token.text, index);
      names[index - 1] ??= token.text;
    }
    count = Math.max(count, index);
  }
  return { count, names: Array.from({ length: count }, (_, i) => names[i] ?? null) };
}

const transactionWords = ["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"];

/** The PRAGMAs D1 allows, and the argument each accepts. */
const pragmas: Record<string, "none" | "bool" | "name" | "optional"> = {
  case_sensitive_like: "bool",
  data_version: "none",
  defer_foreign_keys: "bool",
  foreign_key_check: "optional",
  foreign_key_list: "name",
  foreign_keys: "bool",
  ignore_check_constraints: "bool",
  index_info: "name",
  index_list: "name",
  index_xinfo: "name",
  legacy_alter_table: "bool",
  optimize: "optional",
  quick_check: "optional",
  recursive_triggers: "bool",
  reverse_unordered_selects: "bool",
  table_info: "name",
  table_list: "optional",
  table_xinfo: "name",
};
const booleans = new Set(["0", "1", "TRUE", "FALSE", "ON", "OFF", "YES", "NO"]);

function pragmaAllowed(tokens: Token[]): boolean {
  let i = 1;
  if (tokens[i + 1]?.text === ".") i += 2;
  const name = tokens[i];
  if (name?.kind !== "word") return false;
  const rule = pragmas[name.text.toLowerCase()];
  if (!rule) return false;
  const rest = tokens.slice(i + 1);
  if (rest.length === 0) return rule !== "name";
  if (rule === "none") return false;
  let value: Token[];
  if (rest[0].text === "=") value = rest.slice(1);
  else if (rest[0].text === "(" && rest[rest.length - 1].text === ")") value = rest.slice(1, -1);
  else return false;
  if (value.length !== 1) return false;
  if (rule === "bool") return booleans.has(value[0].text.replace(/^'|'$/g, "").toUpperCase());
  return true;
}

/** The statement's first keyword after any EXPLAIN [QUERY PLAN]. */
function verb(tokens: Token[]): { word: string; at: number } {
  let at = 0;
  if (isWord(tokens[at], "EXPLAIN")) {
    at++;
    if (isWord(tokens[at], "QUERY") && isWord(tokens[at + 1], "PLAN")) at += 2;
  }
  return { word: tokens[at]?.kind === "word" ? tokens[at].text.toUpperCase() : "", at };
}

function createsReservedName(tokens: Token[]): boolean {
  let i = 1;
  while (isWord(tokens[i], "TEMP", "TEMPORARY", "UNIQUE", "VIRTUAL")) i++;
  if (!isWord(tokens[i], "TABLE", "INDEX", "VIEW", "TRIGGER")) return false;
  i++;
  if (isWord(tokens[i], "IF") && isWord(tokens[i + 1], "NOT") && isWord(tokens[i + 2], "EXISTS"))
    i += 3;
  if (tokens[i + 1]?.text === ".") i += 2;
  const name = tokens[i] ? unquote(tokens[i].text) : "";
  return name.toLowerCase().startsWith("_cf_");
}

/** An identifier without its quotes. */
export function unquote(text: string): string {
  const q = text[0];
  if (q === '"' || q === "`")
    return text
      .slice(1, -1)
      .split(q + q)
      .join(q);
  if (q === "[") return text.slice(1, -1);
  return text;
}

/**
 * A PRAGMA's table-valued function (`pragma_database_list`, which shows the database file's
 * path, `pragma_compile_options`...) that D1 does not allow. D1's authorizer applies its
 * PRAGMA rules to these too; the allowed ones (`pragma_table_info('t')`...) stay usable.
 */
export function disallowedPragmaFunction(name: string): boolean {
  const lower = name.toLowerCase();
  return lower.startsWith("pragma_") && !Object.hasOwn(pragmas, lower.slice("pragma_".length));
}

/** Why D1 refuses this statement, or null. Mirrors the authorizer D1's SQLite runs with. */
export function refusal(tokens: Token[]): "transaction" | "auth" | null {
  const { word, at } = verb(tokens);
  const own = tokens.slice(at);
  if (transactionWords.includes(word)) return "transaction";
  if (word === "ATTACH" || word === "DETACH") return "auth";
  if (word === "PRAGMA" && !pragmaAllowed(own)) return "auth";
  if (word === "CREATE" && createsReservedName(own)) return "auth";
  // Any name (bare or quoted, in any clause, a view's or trigger's body included) naming a
  // disallowed PRAGMA function; SQLite also takes a string for a table's name ('pragma_x')
  // after FROM, JOIN or a schema's dot. (A string after a comma in FROM is left to the
  // database, which shadows pragma_database_list; see ProjectDatabase.)
  for (const [i, token] of tokens.entries()) {
    const named =
      token.kind === "word" ||
      token.kind === "ident" ||
      (token.kind === "string" &&
        (isWord(tokens[i - 1], "FROM", "JOIN") || tokens[i - 1]?.text === "."));
    if (!named) continue;
    const name = token.kind === "string" ? token.text.slice(1, -1).replace(/''/g, "'") : token.text;
    if (disallowedPragmaFunction(unquote(name))) return "auth";
  }
  return null;
}
