import { api, ApiError } from "../api";
import { clearErrors, field, fill, h, showError } from "../dom";
import type { Page } from "../router";

interface QueryResult {
  results: Record<string, unknown>[];
  meta?: Record<string, unknown>;
}

interface Column {
  name: string;
  type?: string;
}

interface Table {
  name: string;
  columns?: (Column | string)[];
  row_count?: number | null;
  rows?: number;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

function cell(value: unknown): HTMLElement {
  if (value === null || value === undefined) return h("td", { class: "null" }, "NULL");
  if (Array.isArray(value) && value.every((b) => typeof b === "number"))
    return h("td", { class: "muted" }, `[blob, ${value.length} bytes]`);
  if (typeof value === "object") return h("td", { class: "mono" }, JSON.stringify(value));
  return h("td", { class: typeof value === "number" ? "num" : "" }, String(value));
}

/** One statement's rows as a grid (columns in the order the first rows give them). */
function grid(result: QueryResult, index: number | null): HTMLElement {
  const columns: string[] = [];
  for (const row of result.results ?? [])
    for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
  const meta = result.meta ?? {};
  const facts = [
    `${result.results?.length ?? 0} row${result.results?.length === 1 ? "" : "s"}`,
    typeof meta.changes === "number" && meta.changes ? `${meta.changes} changed` : null,
    typeof meta.duration === "number" ? `${Math.round(meta.duration * 100) / 100} ms` : null,
  ].filter(Boolean);
  return h(
    "div",
    { class: "result-set" },
    h(
      "div",
      { class: "muted small" },
      index !== null ? `Statement ${index + 1}: ` : "",
      facts.join(" · "),
    ),
    columns.length
      ? h(
          "div",
          { class: "grid-scroll" },
          h(
            "table",
            { class: "table grid" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                columns.map((c) => h("th", null, c)),
              ),
            ),
            h(
              "tbody",
              null,
              result.results.map((row) =>
                h(
                  "tr",
                  null,
                  columns.map((c) => cell(row[c])),
                ),
              ),
            ),
          ),
        )
      : null,
  );
}

/** The project's database: its tables, a SQL box, and the results as grids. */
export function sqlPage(): Page {
  const tables = h("ul", { class: "table-list" });
  const sql = h("textarea", {
    name: "sql",
    rows: 6,
    spellcheck: false,
    class: "mono",
    placeholder: "SELECT * FROM sqlite_master;",
  });
  const params = h("input", {
    name: "params",
    placeholder: '[1, "two"]',
    autocomplete: "off",
    spellcheck: false,
  });
  const run = h("button", { type: "submit" }, "Run");
  const output = h("div", { class: "results", "aria-live": "polite" });

  async function loadTables() {
    try {
      const { data } = await api<{ data: Table[] }>("GET", "/database_tables");
      if (!data.length) {
        fill(tables, h("li", { class: "muted pad" }, "No tables yet."));
        return;
      }
      fill(
        tables,
        data.map((t) => {
          const count = t.row_count ?? t.rows;
          const columns = (t.columns ?? []).map((c) =>
            typeof c === "string" ? c : [c.name, c.type].filter(Boolean).join(" "),
          );
          return h(
            "li",
            null,
            h(
              "button",
              {
                type: "button",
                class: "table-name",
                "data-table": t.name,
                title: `Show the first 100 rows of ${t.name}`,
                onclick: () => {
                  sql.value = `SELECT * FROM ${quote(t.name)} LIMIT 100;`;
                  params.value = "";
                  form.requestSubmit();
                },
              },
              h(
                "span",
                { class: "table-line" },
                h("span", { class: "mono" }, t.name),
                typeof count === "number"
                  ? h("span", { class: "muted small" }, `${count} row${count === 1 ? "" : "s"}`)
                  : null,
              ),
              columns.length
                ? h("span", { class: "columns muted small mono" }, columns.join(", "))
                : null,
            ),
          );
        }),
      );
    } catch (err) {
      fill(tables, h("li", { class: "error pad" }, (err as Error).message));
    }
  }

  const form: HTMLFormElement = h(
    "form",
    {
      class: "card",
      novalidate: true,
      onsubmit: async (e: Event) => {
        e.preventDefault();
        clearErrors(form);
        let bound: unknown[] | undefined;
        if (params.value.trim()) {
          try {
            bound = JSON.parse(params.value);
            if (!Array.isArray(bound)) throw new Error("expected a JSON array");
          } catch (err) {
            const message = `Params must be a JSON array: ${(err as Error).message}`;
            return showError(form, new ApiError(400, message, [{ field: "params", message }]));
          }
        }
        run.disabled = true;
        fill(output, h("p", { class: "muted" }, "Running…"));
        try {
          const { data } = await api<{ data: QueryResult | QueryResult[] }>(
            "POST",
            "/database/query",
            {
              sql: sql.value,
              ...(bound ? { params: bound } : {}),
            },
          );
          fill(output, Array.isArray(data) ? data.map((r, i) => grid(r, i)) : grid(data, null));
          if (/\b(create|drop|alter|insert|delete|update|replace)\b/i.test(sql.value))
            void loadTables();
        } catch (err) {
          fill(output);
          showError(form, err);
        } finally {
          run.disabled = false;
        }
      },
    },
    field("SQL", sql, {
      name: "sql",
      hint: "Several statements run one after another. Ctrl/Cmd+Enter runs.",
    }),
    field("Params", params, {
      name: "params",
      hint: "Optional JSON array for ? placeholders (one statement).",
    }),
    h("div", { class: "form-error", role: "alert" }),
    h("div", { class: "actions" }, run),
  );
  sql.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  void loadTables();

  return {
    title: "Database",
    el: h(
      "div",
      null,
      h("div", { class: "page-head" }, h("h1", null, "Database")),
      h(
        "div",
        { class: "split sql" },
        h("section", { class: "card flush" }, h("h2", { class: "pad" }, "Tables"), tables),
        h("div", { class: "sql-main" }, form, output),
      ),
    ),
  };
}
