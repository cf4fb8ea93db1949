import { api, fnPath, type Invocation } from "../api";
import { ago, fill, h, pretty } from "../dom";

const refreshMs = 3000;

/** `POST /users/7?x=1`: what the record's call asked for (empty from an older server). */
function called(r: Invocation): string {
  return r.method ? `${r.method} ${r.path ?? "/"}` : "";
}

function details(r: Invocation): HTMLElement {
  return h(
    "div",
    { class: "inv-details" },
    r.error_message ? h("p", { class: "error" }, r.error_message) : null,
    r.error_stack
      ? [
          h("h4", null, "Stack"),
          h("pre", { class: "stack", "data-testid": "error-stack" }, r.error_stack),
        ]
      : null,
    h("h4", null, "Console"),
    r.logs.length
      ? h(
          "ol",
          { class: "logs" },
          r.logs.map((l) =>
            h("li", { class: `log ${l.level}` }, h("span", { class: "level" }, l.level), l.message),
          ),
        )
      : h("p", { class: "muted small" }, "No console output."),
    h("h4", null, "Request body"),
    h("pre", { class: "body" }, pretty(r.request_body) || "(empty)"),
    h("h4", null, "Response body"),
    h("pre", { class: "body" }, pretty(r.response_body) || "(empty)"),
    h(
      "details",
      null,
      h("summary", null, "Request headers"),
      h(
        "table",
        { class: "kv-table" },
        Object.entries(r.request_headers).map(([k, v]) =>
          h("tr", null, h("th", null, k), h("td", { class: "mono" }, v)),
        ),
      ),
    ),
  );
}

/** Recent invocations of a function, newest first; refreshes itself while shown. */
export function invocationsTab(fnId: string) {
  const open = new Set<string>();
  let timer: number | undefined;
  let visible = false;
  let loading = false;
  const status = h(
    "select",
    { name: "status", onchange: () => void load() },
    h("option", { value: "" }, "All"),
    h("option", { value: "success" }, "Success"),
    h("option", { value: "failed" }, "Failed"),
  );
  const auto = h("input", {
    type: "checkbox",
    checked: true,
    onchange: () => schedule(),
  });
  const updated = h("span", { class: "muted small", "aria-live": "off" });
  const list = h("div", { class: "inv-list" });

  function row(r: Invocation): HTMLElement {
    const expanded = open.has(r.id);
    const item = h(
      "div",
      { class: `inv ${r.status}`, "data-invocation": r.id },
      h(
        "button",
        {
          type: "button",
          class: "inv-row",
          "aria-expanded": String(expanded),
          onclick: () => {
            if (open.has(r.id)) open.delete(r.id);
            else open.add(r.id);
            item.replaceWith(row(r));
          },
        },
        h("span", { class: `badge ${r.status === "success" ? "deployed" : "error"}` }, r.status),
        h("span", { class: "mono" }, String(r.status_code)),
        h("span", { class: "mono called", title: called(r) }, called(r)),
        h("span", { class: "muted" }, `${Math.round(r.duration_ms * 10) / 10} ms`),
        h("span", { class: "muted version" }, r.version ? `v${r.version}` : ""),
        h("span", { class: "muted trigger" }, r.trigger),
        h("span", { class: "muted when" }, ago(r.created_at)),
        h("span", { class: "first-log mono small" }, r.logs[0]?.message ?? r.error_message ?? ""),
      ),
      expanded ? details(r) : null,
    );
    return item;
  }

  async function load() {
    if (loading) return;
    loading = true;
    try {
      const query = status.value ? `&status=${status.value}` : "";
      const { data } = await api<{ data: Invocation[] }>(
        "GET",
        `${fnPath(fnId)}/invocations?limit=50${query}`,
      );
      fill(
        list,
        data.length
          ? data.map(row)
          : h(
              "p",
              { class: "muted pad" },
              status.value ? `No ${status.value} invocations.` : "No invocations yet.",
            ),
      );
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      updated.textContent = (err as Error).message;
    } finally {
      loading = false;
      schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = undefined;
    if (visible && auto.checked) timer = window.setTimeout(() => void load(), refreshMs);
  }

  const el = h(
    "section",
    { class: "card flush invocations" },
    h(
      "div",
      { class: "toolbar" },
      h("label", { class: "inline-label" }, "Status ", status),
      h("label", { class: "inline-label" }, auto, " Auto-refresh"),
      h(
        "button",
        { type: "button", class: "small secondary", onclick: () => void load() },
        "Refresh",
      ),
      updated,
    ),
    list,
  );

  return {
    el,
    setVisible(shown: boolean) {
      visible = shown;
      if (shown) void load();
      else schedule();
    },
    dispose() {
      visible = false;
      clearTimeout(timer);
    },
  };
}
