import "./styles.css";
import { onUnauthorized, request } from "./api";
import { clearErrors, field, h, showError } from "./dom";
import { match, navigate, onNavigate, type Page } from "./router";
import { session } from "./session";
import { signInPage } from "./pages/signin";
import { functionsPage } from "./pages/functions";
import { kvPage } from "./pages/kv";
import { sqlPage } from "./pages/sql";

const root = document.getElementById("app")!;
let current: Page | null = null;

function show(page: Page) {
  current?.dispose?.();
  current = page;
  document.title = `${page.title} · Workerbase`;
  return page.el;
}

/** A page whose code loads on first use (the editor is most of the bundle). */
function lazyPage(title: string, load: () => Promise<Page>): Page {
  const el = h("div", null, h("p", { class: "muted" }, "Loading…"));
  let inner: Page | null = null;
  let disposed = false;
  load().then(
    (page) => {
      if (disposed) return page.dispose?.();
      inner = page;
      el.replaceChildren(page.el);
    },
    () =>
      el.replaceChildren(
        h("p", { class: "error" }, "Could not load this page; reload to try again."),
      ),
  );
  return {
    title,
    el,
    dispose: () => {
      disposed = true;
      inner?.dispose?.();
    },
    canLeave: () => inner?.canLeave?.() ?? true,
  };
}

function navLink(href: string, label: string, active: boolean) {
  return h("a", { href, "data-link": true, "aria-current": active ? "page" : null }, label);
}

/** A small dialog to enter a key again after a 401, without leaving the page. */
function reauthBanner(): HTMLElement {
  const input = h("input", { type: "password", autocomplete: "off", placeholder: "API key" });
  const form: HTMLFormElement = h(
    "form",
    {
      class: "banner-form",
      novalidate: true,
      onsubmit: async (e: Event) => {
        e.preventDefault();
        try {
          await request("GET", "/functions", { key: input.value.trim() });
          session.signIn(input.value.trim());
          banner.hidden = true;
          input.value = "";
          clearErrors(form);
        } catch (err) {
          showError(form, err, "api_key");
        }
      },
    },
    field("API key", input, { name: "api_key" }),
    h("button", { type: "submit" }, "Use this key"),
  );
  const banner = h(
    "div",
    { class: "banner", role: "alert", hidden: true },
    h("p", null, "The server refused this API key. Your unsaved work stays on this page."),
    form,
  );
  onUnauthorized(() => {
    if (session.key()) banner.hidden = false;
  });
  return banner;
}

const banner = reauthBanner();

function shell(route: ReturnType<typeof match>, page: HTMLElement): HTMLElement {
  const signOut = () => {
    if (current?.canLeave && !current.canLeave() && !confirm("Discard unsaved changes?")) return;
    current?.dispose?.();
    current = null;
    session.signOut();
    history.replaceState(null, "", "/");
    render();
  };
  return h(
    "div",
    { class: "shell" },
    h(
      "div",
      { class: "top" },
      h(
        "header",
        { class: "topbar" },
        h(
          "a",
          { class: "brand", href: "/", "data-link": true },
          h("span", { class: "logo" }),
          "Workerbase",
        ),
        h(
          "nav",
          { "aria-label": "Main" },
          navLink("/", "Functions", route.name === "functions" || route.name === "function"),
          navLink("/data/kv", "KV", route.name === "kv"),
          navLink("/data/sql", "Database", route.name === "sql"),
        ),
        h("button", { type: "button", class: "ghost small signout", onclick: signOut }, "Sign out"),
      ),
      banner,
    ),
    h("main", { class: "page" }, page),
  );
}

function render() {
  const url = new URL(location.href);
  if (!session.key()) {
    root.replaceChildren(show(signInPage(() => render())));
    return;
  }
  const route = match(url);
  const page =
    route.name === "functions"
      ? functionsPage()
      : route.name === "function"
        ? lazyPage("Function", async () =>
            (await import("./pages/function")).functionPage(route.id!, route.query),
          )
        : route.name === "kv"
          ? kvPage(route.query)
          : route.name === "sql"
            ? sqlPage()
            : {
                title: "Not found",
                el: h(
                  "div",
                  { class: "card" },
                  h("h1", null, "Page not found"),
                  h("a", { href: "/", "data-link": true }, "Back to functions"),
                ),
              };
  root.replaceChildren(shell(route, show(page)));
}

// In-app links: no reload, and ask before dropping unsaved work.
document.addEventListener("click", (e) => {
  const a = (e.target as Element).closest?.("a[data-link]") as HTMLAnchorElement | null;
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  // Unsaved editor text is kept in sessionStorage, so leaving within the app loses nothing.
  if (a.href !== location.href) navigate(a.href);
});
window.addEventListener("beforeunload", (e) => {
  if (current?.canLeave && !current.canLeave()) e.preventDefault();
});

onNavigate(render);
render();
