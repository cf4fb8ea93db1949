import { api, liveVersion, type Fn, type Language } from "../api";
import { ago, clearErrors, copyButton, field, fill, h, showError, statusBadge } from "../dom";
import { navigate, type Page } from "../router";

export const starterCode = `async function handler(request, env) {
  const name = new URL(request.url).searchParams.get("name") ?? "world";
  console.log("greeting", name);
  return Response.json({ hello: name });
}
`;

/** The TypeScript starter: the same handler, typed (types are removed at deploy, not checked). */
export const typeScriptStarterCode = `interface Env {
  KV: KVNamespace;
  [secret: string]: unknown;
}

interface Greeting {
  hello: string;
}

async function handler(request: Request, env: Env): Promise<Response> {
  const name: string = new URL(request.url).searchParams.get("name") ?? "world";
  console.log("greeting", name);
  const body: Greeting = { hello: name };
  return Response.json(body);
}
`;

const starters: Record<Language, string> = {
  javascript: starterCode,
  typescript: typeScriptStarterCode,
};

function row(fn: Fn): HTMLElement {
  const href = `/functions/${fn.id}`;
  return h(
    "tr",
    { "data-function": fn.slug },
    h(
      "td",
      { class: "name", "data-label": "Name" },
      h("a", { href, "data-link": true }, fn.name),
      h("div", { class: "muted mono small" }, fn.slug),
    ),
    h("td", { "data-label": "Status" }, statusBadge(fn.status)),
    h(
      "td",
      { "data-label": "Version" },
      liveVersion(fn) ? `v${liveVersion(fn)}` : h("span", { class: "muted" }, "—"),
    ),
    h("td", { "data-label": "Last deploy" }, ago(fn.last_deployed_at)),
    h(
      "td",
      { "data-label": "Access" },
      h(
        "span",
        { class: `pill ${fn.public_endpoint ? "public" : ""}` },
        fn.public_endpoint ? "public" : "private",
      ),
    ),
    h(
      "td",
      { class: "endpoint", "data-label": "Endpoint" },
      h("code", { class: "url", title: fn.endpoint_url }, fn.endpoint_url),
      copyButton(() => fn.endpoint_url),
    ),
  );
}

function createForm(onCancel: () => void): HTMLFormElement {
  const name = h("input", {
    name: "name",
    required: true,
    autocomplete: "off",
    placeholder: "Order webhook",
  });
  const slug = h("input", { name: "slug", autocomplete: "off", placeholder: "from the name" });
  const isPublic = h("input", { type: "checkbox", name: "public_endpoint" });
  const language = h(
    "select",
    { name: "language" },
    h("option", { value: "javascript" }, "JavaScript"),
    h("option", { value: "typescript" }, "TypeScript"),
  );
  const submit = h("button", { type: "submit" }, "Create function");
  const form: HTMLFormElement = h(
    "form",
    {
      class: "card create",
      novalidate: true,
      onsubmit: async (e: Event) => {
        e.preventDefault();
        clearErrors(form);
        submit.disabled = true;
        try {
          const body = {
            function: {
              name: name.value,
              ...(slug.value.trim() ? { slug: slug.value.trim() } : {}),
              public_endpoint: isPublic.checked,
              language: language.value,
              code: starters[language.value as Language],
            },
          };
          const { data } = await api<{ data: Fn }>("POST", "/functions", body);
          navigate(`/functions/${data.id}`);
        } catch (err) {
          showError(form, err);
          submit.disabled = false;
        }
      },
    },
    h("h2", null, "New function"),
    h(
      "div",
      { class: "grid2" },
      field("Name", name, { name: "name" }),
      field("Slug", slug, {
        name: "slug",
        hint: "Lowercase letters, digits and hyphens; optional.",
      }),
    ),
    field("Language", language, {
      name: "language",
      hint: "TypeScript's types are removed at deploy; they are not checked.",
    }),
    field("Public endpoint (callable without an API key)", isPublic, {
      name: "public_endpoint",
      inline: true,
    }),
    h("div", { class: "form-error", role: "alert" }),
    h(
      "div",
      { class: "actions" },
      submit,
      h("button", { type: "button", class: "ghost", onclick: onCancel }, "Cancel"),
    ),
  );
  return form;
}

/** The project's functions: status, version, last deploy, access and endpoint. */
export function functionsPage(): Page {
  const body = h("tbody");
  const list = h("div", { class: "card flush" });
  const formSlot = h("div");
  const newButton = h("button", { type: "button", onclick: () => openForm() }, "New function");
  function openForm() {
    const form = createForm(() => fill(formSlot));
    fill(formSlot, form);
    form.querySelector("input")!.focus();
  }

  async function load() {
    fill(list, h("p", { class: "muted pad" }, "Loading…"));
    try {
      const { data } = await api<{ data: Fn[] }>("GET", "/functions");
      if (data.length === 0) {
        fill(
          list,
          h(
            "div",
            { class: "empty" },
            h("p", null, "No functions yet."),
            h(
              "button",
              { type: "button", onclick: () => openForm() },
              "Create your first function",
            ),
          ),
        );
        return;
      }
      fill(body, data.map(row));
      fill(
        list,
        h(
          "table",
          { class: "table functions" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              ["Name", "Status", "Version", "Last deploy", "Access", "Endpoint"].map((t) =>
                h("th", null, t),
              ),
            ),
          ),
          body,
        ),
      );
    } catch (err) {
      fill(list, h("p", { class: "error pad" }, (err as Error).message));
    }
  }
  void load();

  return {
    title: "Functions",
    el: h(
      "div",
      null,
      h("div", { class: "page-head" }, h("h1", null, "Functions"), newButton),
      formSlot,
      list,
    ),
  };
}
