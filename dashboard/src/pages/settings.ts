import { api, fnPath, type Fn } from "../api";
import { clearErrors, field, h, showError, toast } from "../dom";
import { navigate } from "../router";
import { drafts } from "../session";

/** A number when the text is one; otherwise the text, so the server names the field. */
function numberOrText(text: string): number | string {
  return /^\s*-?\d+(\.\d+)?\s*$/.test(text) ? Number(text) : text;
}

/** Name, slug, description, public endpoint, response mode and timeout; delete. */
export function settingsTab(initial: Fn, saved: (fn: Fn) => void) {
  const name = h("input", { name: "name", autocomplete: "off" });
  const slug = h("input", { name: "slug", autocomplete: "off", spellcheck: false });
  const description = h("textarea", { name: "description", rows: 2 });
  const isPublic = h("input", { type: "checkbox", name: "public_endpoint" });
  const mode = h(
    "select",
    { name: "invoke_response_mode" },
    h("option", { value: "passthrough" }, "passthrough"),
    h("option", { value: "wrapped" }, "wrapped"),
  );
  const timeout = h("input", {
    name: "timeout",
    type: "number",
    min: 1,
    max: 300,
    step: 1,
    inputmode: "numeric",
  });
  const submit = h("button", { type: "submit" }, "Save settings");

  const snapshot = () =>
    JSON.stringify([
      name.value,
      slug.value,
      description.value,
      isPublic.checked,
      mode.value,
      timeout.value,
    ]);
  let shown = "";
  function refresh(fn: Fn) {
    name.value = fn.name;
    slug.value = fn.slug;
    description.value = fn.description ?? "";
    isPublic.checked = fn.public_endpoint;
    mode.value = fn.invoke_response_mode;
    timeout.value = String(fn.runtime_config.timeout);
    shown = snapshot();
  }
  let fn = initial;
  refresh(fn);

  const form: HTMLFormElement = h(
    "form",
    {
      class: "card settings",
      novalidate: true,
      onsubmit: async (e: Event) => {
        e.preventDefault();
        clearErrors(form);
        submit.disabled = true;
        try {
          const { data } = await api<{ data: Fn }>("PATCH", fnPath(fn.id), {
            function: {
              name: name.value,
              slug: slug.value.trim(),
              description: description.value.trim() ? description.value : null,
              public_endpoint: isPublic.checked,
              invoke_response_mode: mode.value,
              runtime_config: { timeout: numberOrText(timeout.value) },
            },
          });
          fn = data;
          refresh(data);
          saved(data);
          toast("Settings saved");
        } catch (err) {
          // The form keeps what was typed; the server's message sits beside the field.
          showError(form, err);
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h2", null, "Settings"),
    h(
      "div",
      { class: "grid2" },
      field("Name", name, { name: "name" }),
      field("Slug", slug, {
        name: "slug",
        hint: "Used in URLs instead of the id; unique in the project.",
      }),
    ),
    field("Description", description, { name: "description" }),
    field("Public endpoint: anyone with the URL can call it, no API key", isPublic, {
      name: "public_endpoint",
      inline: true,
    }),
    h(
      "div",
      { class: "grid2" },
      field("Response mode", mode, {
        name: "invoke_response_mode",
        hint: 'passthrough: the response as the function made it; wrapped: {"data": ...} or {"error": ...}.',
      }),
      field("Timeout (seconds)", timeout, {
        name: "runtime_config.timeout",
        hint: "1 to 300; applies at the next deploy.",
      }),
    ),
    h("div", { class: "form-error", role: "alert" }),
    h("div", { class: "actions" }, submit, h("span", { class: "muted small" }, "Ctrl/Cmd+S")),
  );

  const danger = h(
    "section",
    { class: "card danger-zone" },
    h("h2", null, "Delete function"),
    h(
      "p",
      { class: "muted small" },
      "Removes the function and its secrets; its endpoint then answers 404. Invocation records are kept.",
    ),
    h(
      "button",
      {
        type: "button",
        class: "danger",
        onclick: async () => {
          if (!confirm(`Delete ${fn.name}? This cannot be undone.`)) return;
          try {
            await api("DELETE", fnPath(fn.id));
            drafts.clear(fn.id);
            toast(`Deleted ${fn.name}`);
            navigate("/");
          } catch (err) {
            toast((err as Error).message, "error");
          }
        },
      },
      "Delete function",
    ),
  );

  return {
    el: h("div", { class: "settings-tab" }, form, danger),
    refresh(next: Fn) {
      fn = next;
      // Edits not saved yet (or refused by the server) stay as typed.
      if (snapshot() === shown) refresh(next);
    },
    submit: () => form.requestSubmit(),
  };
}
