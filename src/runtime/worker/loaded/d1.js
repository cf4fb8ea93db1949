// env.DB of a loaded function: Cloudflare D1's binding API on top of the supervisor's
// DbBinding entrypoint. prepare() and bind() are synchronous in D1, so statements are built
// here and sent to the host on first/all/raw/run/batch/exec. Result shapes, bookmarks and
// error messages follow workerd's own D1 shim, checked side by side against Miniflare in
// test/e2e/d1.test.ts.

const FIRST_UNCONSTRAINED = "first-unconstrained";
const FIRST_PRIMARY = "first-primary";

function d1Error(prefix, message, cause = message) {
  return new Error(`${prefix}: ${message}`, { cause: new Error(cause) });
}

function toObjects(result) {
  const { columns, rows } = result;
  return {
    success: true,
    meta: result.meta,
    results: rows.map((row) => Object.fromEntries(row.map((cell, i) => [columns[i], cell]))),
  };
}

/** D1's bind(): numbers, strings and null as they are, booleans as 1/0, bytes as blobs. */
function bindable(value) {
  const type = typeof value;
  if (type === "number" || type === "string") return value;
  if (type === "boolean") return value ? 1 : 0;
  if (type === "object") {
    if (value == null) return value;
    if (Array.isArray(value) && value.every((b) => typeof b == "number" && b >= 0 && b < 256))
      return value;
    if (value instanceof ArrayBuffer) return Array.from(new Uint8Array(value));
    if (ArrayBuffer.isView(value)) return Array.from(value);
  }
  throw d1Error("D1_TYPE_ERROR", `Type '${type}' not supported for value '${value}'`);
}

class D1DatabaseSession {
  #binding;
  #bookmarkOrConstraint;

  constructor(binding, bookmarkOrConstraint) {
    this.#binding = binding;
    if (bookmarkOrConstraint == null) {
      this.#bookmarkOrConstraint = null;
    } else {
      this.#bookmarkOrConstraint = bookmarkOrConstraint.trim();
      if (!this.#bookmarkOrConstraint) {
        throw new Error("D1_SESSION_ERROR: invalid bookmark or constraint");
      }
    }
  }

  prepare(query) {
    return new D1PreparedStatement(this, query);
  }

  async batch(statements) {
    const results = await this._query(
      statements.map((s) => ({ sql: s.statement, params: s.params })),
    );
    return results.map(toObjects);
  }

  /** The latest bookmark this session has seen; null until its first query answers. */
  getBookmark() {
    const current = this.#bookmarkOrConstraint;
    return current === FIRST_UNCONSTRAINED || current === FIRST_PRIMARY ? null : current;
  }

  _updateBookmark(bookmark) {
    const current = this.getBookmark();
    if (bookmark && (current === null || current.localeCompare(bookmark) < 0)) {
      this.#bookmarkOrConstraint = bookmark;
    }
  }

  /** Sends queries (one transaction); answers `{results}` or `{error}`. */
  async _send(queries) {
    const answer = JSON.parse(
      await this.#binding.call("query", {
        queries,
        bookmark: this.#bookmarkOrConstraint ?? undefined,
      }),
    );
    if (answer.bookmark) this._updateBookmark(answer.bookmark);
    return answer;
  }

  async _query(queries) {
    const answer = await this._send(queries);
    if (answer.error !== undefined) throw d1Error("D1_ERROR", answer.error);
    return answer.results;
  }
}

/** env.DB itself: always the primary, so no bookmarks; adds exec() and dump(). */
class D1DatabaseSessionAlwaysPrimary extends D1DatabaseSession {
  constructor(binding) {
    super(binding, null);
  }

  _updateBookmark() {}

  getBookmark() {
    return null;
  }

  async exec(query) {
    // Like D1: one statement per line (a statement spanning lines fails), all in one go.
    const lines = query.trim().split("\n");
    const answer = await this._send(lines.map((sql) => ({ sql })));
    if (answer.error !== undefined) {
      throw d1Error("D1_EXEC_ERROR", `Error in line 1: ${lines[0]}: ${answer.error}`);
    }
    let duration = 0;
    for (const result of answer.results) duration += result.meta.duration;
    return { count: answer.results.length, duration };
  }
}

class D1Database {
  #binding;
  #primary;

  constructor(binding) {
    this.#binding = binding;
    this.#primary = new D1DatabaseSessionAlwaysPrimary(binding);
  }

  prepare(query) {
    return new D1PreparedStatement(this.#primary, query);
  }

  async batch(statements) {
    return this.#primary.batch(statements);
  }

  async exec(query) {
    return this.#primary.exec(query);
  }

  withSession(constraintOrBookmark) {
    constraintOrBookmark = constraintOrBookmark?.trim();
    if (constraintOrBookmark == null || constraintOrBookmark === "") {
      constraintOrBookmark = FIRST_UNCONSTRAINED;
    }
    return new D1DatabaseSession(this.#binding, constraintOrBookmark);
  }

  /** Deprecated in D1 and refused there (and in Miniflare) the same way. */
  async dump() {
    throw d1Error("D1_DUMP_ERROR", "Status + 404", "Status 404");
  }
}

class D1PreparedStatement {
  #session;

  constructor(session, statement, values) {
    this.#session = session;
    this.statement = statement;
    this.params = values || [];
  }

  bind(...values) {
    return new D1PreparedStatement(this.#session, this.statement, values.map(bindable));
  }

  async #one() {
    const [result] = await this.#session._query([{ sql: this.statement, params: this.params }]);
    return result;
  }

  async first(colName) {
    const { results } = toObjects(await this.#one());
    if (results.length === 0) return null;
    const first = results[0];
    if (colName === undefined) return first;
    if (first[colName] === undefined) {
      throw d1Error("D1_COLUMN_NOTFOUND", `Column not found (${colName})`, "Column not found");
    }
    return first[colName];
  }

  async run() {
    return toObjects(await this.#one());
  }

  async all() {
    return toObjects(await this.#one());
  }

  async raw(options) {
    const { columns, rows } = await this.#one();
    return [...(options?.columnNames ? [columns] : []), ...rows];
  }
}

/** The env.DB object for one function, over its project's DbBinding. */
export function createD1(binding) {
  return new D1Database(binding);
}
