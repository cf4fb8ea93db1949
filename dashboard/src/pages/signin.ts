import { ApiError, request } from "../api";
import { field, h, showError } from "../dom";
import type { Page } from "../router";
import { session } from "../session";

/** Sign in with a project API key; it is kept for this browser session only. */
export function signInPage(done: () => void): Page {
  const key = h("input", {
    type: "password",
    name: "api_key",
    autocomplete: "current-password",
    required: true,
    autofocus: true,
  });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form: HTMLFormElement = h(
    "form",
    {
      class: "card signin",
      novalidate: true,
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const value = key.value.trim();
        if (!value) return showError(form, fieldError("Enter the project's API key"));
        submit.disabled = true;
        try {
          await request("GET", "/functions", { key: value });
          session.signIn(value);
          done();
        } catch (err) {
          showError(form, err, "api_key");
          submit.disabled = false;
        }
      },
    },
    h("div", { class: "brand big" }, h("span", { class: "logo" }), "Workerbase"),
    h("h1", null, "Sign in"),
    h(
      "p",
      { class: "muted" },
      "Use a project API key. It is kept only for this browser tab's session.",
    ),
    field("API key", key, {
      name: "api_key",
      hint: "Printed by the server on first start, or in the data dir's credentials file.",
    }),
    h("div", { class: "actions" }, submit),
  );
  setTimeout(() => key.focus());
  return { title: "Sign in", el: h("div", { class: "center" }, form) };
}

function fieldError(message: string) {
  return new ApiError(400, message, [{ field: "api_key", message }]);
}
