import { ApiError } from "./api";

export type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown>;

const props = new Set(["value", "checked", "disabled", "selected", "hidden", "indeterminate"]);

/** Creates an element: `on*` attributes become listeners, a few names are set as properties. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value as EventListener);
    } else if (props.has(name)) {
      (el as any)[name] = value; // a DOM property of this element; names are listed above
    } else if (name === "class") {
      el.className = String(value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]) {
  el.replaceChildren();
  append(el, children);
}

let fieldIds = 0;

/** A labelled form control with a place for the server's message about it. */
export function field(
  label: string,
  control: HTMLElement,
  options: { name: string; hint?: Child; inline?: boolean },
): HTMLElement {
  const id = control.id || `f${++fieldIds}`;
  control.id = id;
  const error = h("div", { class: "field-error", role: "alert", id: `${id}-error` });
  control.setAttribute("aria-describedby", error.id);
  return h(
    "div",
    { class: options.inline ? "field inline" : "field", "data-field": options.name },
    options.inline
      ? [control, h("label", { for: id }, label)]
      : [h("label", { for: id }, label), control],
    options.hint ? h("div", { class: "hint" }, options.hint) : null,
    error,
  );
}

/** Clears the messages of a form. */
export function clearErrors(scope: Element) {
  for (const el of scope.querySelectorAll(".field-error, .form-error")) el.textContent = "";
  for (const el of scope.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function fieldFor(scope: Element, name: string): Element | null {
  const fields = [...scope.querySelectorAll<HTMLElement>("[data-field]")];
  return (
    fields.find((f) => f.dataset.field === name) ??
    fields.find((f) => name.startsWith(`${f.dataset.field}.`)) ??
    fields.find((f) => f.dataset.field!.startsWith(`${name}.`)) ??
    null
  );
}

/**
 * Shows an error next to the fields it names (the server's own sentence beside the first);
 * one that names no field goes beside `fallbackField`, else to the form's `.form-error`.
 */
export function showError(scope: Element, err: unknown, fallbackField?: string) {
  clearErrors(scope);
  const message = err instanceof Error ? err.message : String(err);
  let details = err instanceof ApiError ? err.details : [];
  if (details.length === 0 && fallbackField) details = [{ field: fallbackField, message }];
  let placed = false;
  details.forEach((issue, i) => {
    const target = fieldFor(scope, issue.field);
    if (!target) return;
    const slot = target.querySelector(".field-error")!;
    if (slot.textContent) return;
    slot.textContent = i === 0 ? message : `Invalid ${issue.field}: ${issue.message}`;
    target.querySelector("input, select, textarea")?.setAttribute("aria-invalid", "true");
    placed = true;
  });
  if (!placed) {
    const slot = scope.querySelector(".form-error");
    if (slot) slot.textContent = message;
    else toast(message, "error");
  }
}

/** A short message in the corner. */
export function toast(message: string, kind: "info" | "error" = "info") {
  let box = document.querySelector(".toasts");
  if (!box) document.body.append((box = h("div", { class: "toasts", "aria-live": "polite" })));
  const el = h("div", { class: `toast ${kind}` }, message);
  box.append(el);
  while (box.childElementCount > 3) box.firstElementChild!.remove();
  setTimeout(() => el.remove(), kind === "error" ? 6000 : 2500);
}

async function writeClipboard(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Not a secure context (plain http on a LAN address): fall back to a selection.
    const area = h("textarea", { class: "offscreen", readonly: true }, text);
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}

/** A button that copies `text` and says so. */
export function copyButton(text: () => string, label = "Copy"): HTMLButtonElement {
  const button: HTMLButtonElement = h(
    "button",
    {
      type: "button",
      class: "small ghost",
      title: "Copy to clipboard",
      onclick: async () => {
        const ok = await writeClipboard(text());
        button.textContent = ok ? "Copied" : "Copy failed";
        setTimeout(() => (button.textContent = label), 1500);
      },
    },
    label,
  );
  return button;
}

/** "3 min ago", with the exact time as a tooltip. */
export function ago(iso: string | null): HTMLElement {
  if (!iso) return h("span", { class: "muted" }, "never");
  const at = new Date(iso);
  const s = Math.round((Date.now() - at.getTime()) / 1000);
  const text =
    s < 45
      ? "just now"
      : s < 3600
        ? `${Math.round(s / 60)} min ago`
        : s < 86400
          ? `${Math.round(s / 3600)} h ago`
          : at.toLocaleDateString();
  return h("time", { datetime: iso, title: at.toLocaleString() }, text);
}

export function statusBadge(status: string): HTMLElement {
  return h(
    "span",
    { class: `badge ${status}`, "data-status": status },
    status === "deploying" ? h("span", { class: "spinner", "aria-hidden": "true" }) : null,
    status,
  );
}

/** Pretty JSON when `text` is JSON, else the text itself. */
export function pretty(text: string | null): string {
  if (text === null) return "";
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
