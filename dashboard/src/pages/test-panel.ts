import {
  apiBase,
  api,
  ApiError,
  fnPath,
  liveVersion,
  type Fn,
  type Invocation,
  type LogLine,
} from "../api";
import { clearErrors, field, fill, h, pretty, showError, sleep } from "../dom";
import { session } from "../session";

const methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/** "Name: value" lines; a bad line is an error naming the field. */
function parseHeaders(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const at = line.indexOf(":");
    if (at < 1) {
      const message = `Line ${i + 1} of the headers is not "Name: value"`;
      throw new ApiError(400, message, [{ field: "headers", message }]);
    }
    headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  });
  return headers;
}

function logLines(logs: LogLine[]): HTMLElement {
  if (logs.length === 0) return h("p", { class: "muted small" }, "No console output.");
  return h(
    "ol",
    { class: "logs" },
    logs.map((l) =>
      h("li", { class: `log ${l.level}` }, h("span", { class: "level" }, l.level), l.message),
    ),
  );
}

/** The invocation record of `id`, once the host has stored it (within about a second). */
async function findInvocation(fnId: string, id: string, alive: () => boolean) {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && alive()) {
    const { data } = await api<{ data: Invocation[] }>(
      "GET",
      `${fnPath(fnId)}/invocations?limit=50`,
    );
    const found = data.find((r) => r.id === id);
    if (found) return found;
    await sleep(250);
  }
  return null;
}

/** Sends a request to the deployed function and shows the answer and its console lines. */
export function testPanel(initial: Fn) {
  let fn = initial;
  let alive = true;
  let sent = 0;
  const method = h(
    "select",
    { name: "method" },
    methods.map((m) => h("option", { value: m, selected: m === "POST" }, m)),
  );
  const path = h("input", {
    name: "path",
    placeholder: "/optional/path?query",
    autocomplete: "off",
  });
  const headers = h("textarea", {
    name: "headers",
    rows: 2,
    spellcheck: false,
    placeholder: "X-Webhook-Event: order.created",
  });
  const body = h(
    "textarea",
    { name: "body", rows: 5, spellcheck: false },
    '{\n  "hello": "world"\n}',
  );
  const send = h("button", { type: "submit" }, "Send");
  const result = h("div", { class: "result", "aria-live": "polite" });
  const versionNote = h("p", { class: "muted small" });
  const syncMethod = () => (body.disabled = method.value === "GET");
  method.addEventListener("change", syncMethod);
  syncMethod();

  function refresh(next: Fn) {
    fn = next;
    versionNote.textContent = liveVersion(fn)
      ? `Runs the live version ${liveVersion(fn)}, not the unsaved or undeployed draft.`
      : "Deploy the function before testing it.";
  }
  refresh(fn);

  const form: HTMLFormElement = h(
    "form",
    {
      class: "card test-panel",
      novalidate: true,
      onsubmit: async (e: Event) => {
        e.preventDefault();
        clearErrors(form);
        let extra: Record<string, string>;
        try {
          extra = parseHeaders(headers.value);
          if (!body.disabled && body.value.trim()) {
            try {
              JSON.parse(body.value);
            } catch (err) {
              const message = `The body is not valid JSON: ${(err as Error).message}`;
              throw new ApiError(400, message, [{ field: "body", message }]);
            }
          }
        } catch (err) {
          return showError(form, err);
        }
        const suffix = path.value.trim()
          ? (path.value.startsWith("/") ? "" : "/") + path.value.trim()
          : "";
        const hasBody = !body.disabled && body.value.trim() !== "";
        const mine = ++sent;
        send.disabled = true;
        fill(result, h("p", { class: "muted" }, h("span", { class: "spinner" }), "Sending…"));
        const started = performance.now();
        let res: Response;
        try {
          res = await fetch(`${apiBase}${fnPath(fn.id)}/invoke${suffix}`, {
            method: method.value,
            headers: {
              ...(hasBody ? { "content-type": "application/json" } : {}),
              ...extra,
              "x-api-key": session.key() ?? "",
            },
            body: hasBody ? body.value : undefined,
          });
        } catch (err) {
          send.disabled = false;
          fill(result, h("p", { class: "error" }, `The request failed: ${(err as Error).message}`));
          return;
        }
        const text = await res.text();
        const ms = Math.round(performance.now() - started);
        send.disabled = false;
        if (mine !== sent) return;
        const invocationId = res.headers.get("x-invocation-id");
        const consoleBox = h("div", { class: "console" });
        fill(
          result,
          h(
            "div",
            { class: "status-line" },
            h(
              "span",
              { class: `code s${String(res.status)[0]}`, "data-testid": "test-status" },
              `${res.status} ${res.statusText}`,
            ),
            h("span", { class: "muted" }, `${ms} ms`),
            invocationId
              ? h(
                  "span",
                  { class: "muted small" },
                  "invocation ",
                  h("span", { class: "mono" }, invocationId),
                )
              : null,
          ),
          h("h3", null, "Body"),
          h("pre", { class: "body", "data-testid": "test-body" }, pretty(text) || "(empty)"),
          h(
            "details",
            null,
            h("summary", null, `Headers (${[...res.headers].length})`),
            h(
              "table",
              { class: "kv-table" },
              [...res.headers].map(([k, v]) =>
                h("tr", null, h("th", null, k), h("td", { class: "mono" }, v)),
              ),
            ),
          ),
          h("h3", null, "Console"),
          consoleBox,
        );
        if (!invocationId) {
          fill(
            consoleBox,
            h(
              "p",
              { class: "muted small" },
              "The server answered before running the function; nothing was recorded.",
            ),
          );
          return;
        }
        fill(consoleBox, h("p", { class: "muted small" }, "Waiting for the invocation record…"));
        try {
          const record = await findInvocation(fn.id, invocationId, () => alive && mine === sent);
          if (mine !== sent) return;
          fill(
            consoleBox,
            record
              ? [
                  logLines(record.logs),
                  record.error_message
                    ? h("p", { class: "error small" }, record.error_message)
                    : null,
                ]
              : h(
                  "p",
                  { class: "muted small" },
                  "The invocation record has not appeared yet; see the Invocations tab.",
                ),
          );
        } catch (err) {
          fill(consoleBox, h("p", { class: "error small" }, (err as Error).message));
        }
      },
    },
    h("h2", null, "Test"),
    versionNote,
    h(
      "div",
      { class: "request-line" },
      field("Method", method, { name: "method" }),
      field("Path", path, { name: "path" }),
    ),
    field("Headers", headers, {
      name: "headers",
      hint: "One per line. Your API key is added for you.",
    }),
    field("JSON body", body, { name: "body" }),
    h("div", { class: "form-error", role: "alert" }),
    h("div", { class: "actions" }, send),
    result,
  );

  return {
    el: form,
    refresh,
    dispose: () => {
      alive = false;
    },
  };
}
