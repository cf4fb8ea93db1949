import { ApiError, request } from "../api";
import { clearErrors, field, fill, h, showError, toast } from "../dom";
import { setQuery, type Page } from "../router";

interface KvKey {
  name: string;
  expiration?: number;
  metadata?: unknown;
}

interface Listing {
  keys: KvKey[];
  list_complete: boolean;
  cursor?: string;
}

const valuePath = (key: string) => `/kv/values/${encodeURIComponent(key)}`;
const pageSize = 100;

function expiresText(expiration: number | undefined | null): string {
  return expiration ? new Date(expiration * 1000).toLocaleString() : "never";
}

/** The project's KV namespace: search by prefix, view, edit, add and delete values. */
export function kvPage(query: URLSearchParams): Page {
  const prefix = h("input", {
    type: "search",
    name: "prefix",
    value: query.get("prefix") ?? "",
    placeholder: "Key prefix",
    autocomplete: "off",
    spellcheck: false,
  });
  const list = h("ul", { class: "key-list" });
  const more = h("button", { type: "button", class: "secondary small" }, "Load more");
  const moreBox = h("div", { class: "pad", hidden: true }, more);
  const count = h("span", { class: "muted small" });
  const viewer = h("section", { class: "card kv-viewer" });
  let cursor: string | undefined;
  let selected: string | null = null;
  let shown = 0;

  function keyItem(k: KvKey) {
    return h(
      "li",
      null,
      h(
        "button",
        {
          type: "button",
          class: "key",
          "data-key": k.name,
          "aria-current": k.name === selected ? "true" : null,
          onclick: () => void open(k.name),
        },
        h("span", { class: "mono" }, k.name),
        k.expiration
          ? h("span", { class: "muted small" }, `expires ${expiresText(k.expiration)}`)
          : null,
      ),
    );
  }

  async function search(append = false) {
    if (!append) {
      cursor = undefined;
      shown = 0;
      setQuery({ prefix: prefix.value || null });
    }
    const params = new URLSearchParams({ limit: String(pageSize) });
    if (prefix.value) params.set("prefix", prefix.value);
    if (cursor) params.set("cursor", cursor);
    try {
      const res = await request("GET", `/kv/keys?${params}`);
      const { data } = (await res.json()) as { data: Listing };
      if (!append) fill(list);
      list.append(...data.keys.map(keyItem));
      shown += data.keys.length;
      cursor = data.list_complete ? undefined : data.cursor;
      moreBox.hidden = !cursor;
      count.textContent = `${shown}${cursor ? "+" : ""} key${shown === 1 ? "" : "s"}`;
      if (shown === 0)
        fill(
          list,
          h(
            "li",
            { class: "muted pad" },
            prefix.value ? "No keys with this prefix." : "The namespace is empty.",
          ),
        );
    } catch (err) {
      fill(list, h("li", { class: "error pad" }, (err as Error).message));
    }
  }
  more.addEventListener("click", () => void search(true));

  /** The editor for one key (or a new one when `key` is null). */
  function editor(
    key: string | null,
    text: string,
    info: { binary?: number; metadata?: string | null; expiration?: number | null },
  ) {
    const keyInput = h("input", {
      name: "key",
      value: key ?? "",
      readonly: key !== null,
      autocomplete: "off",
      spellcheck: false,
    });
    const value = h(
      "textarea",
      { name: "value", rows: 12, spellcheck: false, disabled: info.binary !== undefined },
      text,
    );
    const ttl = h("input", {
      name: "expiration_ttl",
      type: "number",
      min: 60,
      inputmode: "numeric",
      placeholder: key && info.expiration ? "keep" : "never",
    });
    const submit = h(
      "button",
      { type: "submit", disabled: info.binary !== undefined },
      key === null ? "Add key" : "Save value",
    );
    const form: HTMLFormElement = h(
      "form",
      {
        novalidate: true,
        onsubmit: async (e: Event) => {
          e.preventDefault();
          clearErrors(form);
          const name = keyInput.value;
          if (!name)
            return showError(
              form,
              new ApiError(400, "Enter a key", [{ field: "key", message: "Required" }]),
            );
          const params = new URLSearchParams();
          if (ttl.value.trim()) params.set("expiration_ttl", ttl.value.trim());
          else if (key !== null && info.expiration)
            params.set("expiration", String(info.expiration));
          const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
          if (key !== null && info.metadata) headers["x-kv-metadata"] = info.metadata;
          submit.disabled = true;
          try {
            await request("PUT", `${valuePath(name)}${params.size ? `?${params}` : ""}`, {
              body: value.value,
              headers,
            });
            toast(`Saved ${name}`);
            await search();
            await open(name);
          } catch (err) {
            showError(form, err);
          } finally {
            submit.disabled = false;
          }
        },
      },
      key === null ? field("Key", keyInput, { name: "key" }) : null,
      info.binary !== undefined
        ? h(
            "p",
            { class: "notice" },
            `A binary value of ${info.binary} bytes: it cannot be edited here.`,
          )
        : null,
      field("Value", value, { name: "value" }),
      h(
        "div",
        { class: "grid2" },
        field("Expires in (seconds)", ttl, {
          name: "expiration_ttl",
          hint:
            key !== null
              ? `Now: ${expiresText(info.expiration)}. Empty keeps it.`
              : "At least 60; empty for never.",
        }),
        key !== null
          ? h(
              "div",
              { class: "field" },
              h("label", null, "Metadata"),
              h("pre", { class: "body small" }, info.metadata ?? "none"),
            )
          : h("div"),
      ),
      h("div", { class: "form-error", role: "alert" }),
      h(
        "div",
        { class: "actions" },
        submit,
        key !== null
          ? h(
              "button",
              {
                type: "button",
                class: "danger",
                onclick: async () => {
                  if (!confirm(`Delete ${key}?`)) return;
                  try {
                    await request("DELETE", valuePath(key));
                    toast(`Deleted ${key}`);
                    selected = null;
                    fill(viewer, h("p", { class: "muted" }, "Select a key to view its value."));
                    await search();
                  } catch (err) {
                    showError(form, err);
                  }
                },
              },
              "Delete",
            )
          : null,
      ),
    );
    return form;
  }

  async function open(key: string) {
    selected = key;
    for (const b of list.querySelectorAll<HTMLElement>("button.key"))
      b.toggleAttribute("aria-current", b.dataset.key === key);
    fill(viewer, h("p", { class: "muted" }, "Loading…"));
    try {
      const res = await request("GET", valuePath(key));
      const bytes = new Uint8Array(await res.arrayBuffer());
      const expiration = Number(res.headers.get("x-kv-expiration")) || null;
      const metadata = res.headers.get("x-kv-metadata");
      let text = "";
      let binary: number | undefined;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      } catch {
        binary = bytes.length;
      }
      fill(
        viewer,
        h("h2", { class: "key-title break" }, key),
        editor(key, text, { binary, metadata, expiration }),
      );
      viewer.scrollIntoView({ block: "nearest" });
    } catch (err) {
      fill(viewer, h("p", { class: "error" }, (err as Error).message));
    }
  }

  function newKey() {
    selected = null;
    fill(viewer, h("h2", null, "New key"), editor(null, "", {}));
    viewer.querySelector("input")?.focus();
  }

  fill(viewer, h("p", { class: "muted" }, "Select a key to view its value."));
  void search();

  return {
    title: "KV",
    el: h(
      "div",
      null,
      h(
        "div",
        { class: "page-head" },
        h("h1", null, "KV"),
        h("button", { type: "button", onclick: newKey }, "New key"),
      ),
      h(
        "div",
        { class: "split" },
        h(
          "section",
          { class: "card flush kv-keys" },
          h(
            "form",
            {
              class: "toolbar",
              role: "search",
              onsubmit: (e: Event) => {
                e.preventDefault();
                void search();
              },
            },
            prefix,
            h("button", { type: "submit", class: "secondary small" }, "Search"),
            count,
          ),
          list,
          moreBox,
        ),
        viewer,
      ),
    ),
  };
}
