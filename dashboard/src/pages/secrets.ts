import { api, ApiError, fnPath, type Secret } from "../api";
import { ago, clearErrors, field, fill, h, showError, toast } from "../dom";

/** A function's secrets (its own and inherited), add and delete; values are never shown. */
export function secretsTab(fnId: string) {
  const list = h("div");
  const name = h("input", {
    name: "name",
    autocomplete: "off",
    placeholder: "API_TOKEN",
    spellcheck: false,
  });
  const value = h("textarea", { name: "value", rows: 3, autocomplete: "off", spellcheck: false });
  const isJson = h("input", { type: "checkbox", name: "json" });
  const scope = h(
    "select",
    { name: "scope" },
    h("option", { value: "function" }, "This function"),
    h("option", { value: "project" }, "Every function of the project"),
  );
  const submit = h("button", { type: "submit" }, "Add secret");

  async function remove(secret: Secret, project: boolean) {
    const where = project ? "the project (every function loses it)" : "this function";
    if (!confirm(`Delete ${secret.name} from ${where}?`)) return;
    try {
      await api(
        "DELETE",
        project ? `/secrets/${secret.name}` : `${fnPath(fnId)}/secrets/${secret.name}`,
      );
      toast(`Deleted ${secret.name}`);
      await load();
    } catch (err) {
      toast((err as Error).message, "error");
    }
  }

  async function load() {
    try {
      const { data } = await api<{ data: Secret[] }>("GET", `${fnPath(fnId)}/secrets`);
      if (data.length === 0) {
        fill(list, h("p", { class: "muted pad" }, "No secrets yet."));
        return;
      }
      fill(
        list,
        h(
          "table",
          { class: "table secrets" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", null, "Name"),
              h("th", null, "Type"),
              h("th", null, "Added"),
              h("th"),
            ),
          ),
          h(
            "tbody",
            null,
            data.map((s) =>
              h(
                "tr",
                { "data-secret": s.name },
                h("td", { class: "mono", "data-label": "Name" }, s.name),
                h(
                  "td",
                  { "data-label": "Type" },
                  h(
                    "span",
                    { class: `pill ${s.type}` },
                    s.type === "inherited" ? "project" : s.type,
                  ),
                ),
                h("td", { "data-label": "Added" }, ago(s.created_at)),
                h(
                  "td",
                  { class: "right" },
                  h(
                    "button",
                    {
                      type: "button",
                      class: "small danger",
                      onclick: () => void remove(s, s.type === "inherited"),
                    },
                    "Delete",
                  ),
                ),
              ),
            ),
          ),
        ),
      );
    } catch (err) {
      fill(list, h("p", { class: "error pad" }, (err as Error).message));
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
        let parsed: unknown = value.value;
        if (isJson.checked) {
          try {
            parsed = JSON.parse(value.value);
          } catch (err) {
            const message = `The value is not valid JSON: ${(err as Error).message}`;
            return showError(form, new ApiError(400, message, [{ field: "value", message }]));
          }
        }
        submit.disabled = true;
        try {
          const path = scope.value === "project" ? "/secrets" : `${fnPath(fnId)}/secrets`;
          await api("POST", path, { secret: { name: name.value.trim(), value: parsed } });
          toast(`Saved ${name.value.trim()}`);
          name.value = "";
          value.value = ""; // never shown again
          isJson.checked = false;
          await load();
        } catch (err) {
          showError(form, err);
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h2", null, "Add a secret"),
    h(
      "p",
      { class: "muted small" },
      "Functions read secrets as env.NAME. A value cannot be read back once saved; adding a name again replaces it.",
    ),
    h(
      "div",
      { class: "grid2" },
      field("Name", name, {
        name: "name",
        hint: "Capital letters, digits and _; KV and DB are reserved.",
      }),
      field("Applies to", scope, { name: "scope" }),
    ),
    field("Value", value, { name: "value" }),
    field("The value is JSON", isJson, { name: "json", inline: true }),
    h("div", { class: "form-error", role: "alert" }),
    h("div", { class: "actions" }, submit),
  );

  return {
    el: h(
      "div",
      { class: "secrets-tab" },
      h("section", { class: "card flush" }, h("h2", { class: "pad" }, "Secrets"), list),
      form,
    ),
    load,
  };
}
