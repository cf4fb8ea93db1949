/** What a page gives the shell: its element, and how to leave it. */
export interface Page {
  el: HTMLElement;
  title: string;
  /** Stops timers and listeners. */
  dispose?: () => void;
  /** False when leaving would drop unsaved work (the shell then asks first). */
  canLeave?: () => boolean;
}

export interface Route {
  name: "functions" | "function" | "kv" | "sql" | "missing";
  id?: string;
  query: URLSearchParams;
}

/** The page a URL shows; the host answers every such path with the app. */
export function match(url: URL): Route {
  const query = url.searchParams;
  const path = url.pathname.replace(/\/+$/, "") || "/";
  if (path === "/" || path === "/functions") return { name: "functions", query };
  const fn = /^\/functions\/([^/]+)$/.exec(path);
  if (fn) return { name: "function", id: decodeURIComponent(fn[1]), query };
  if (path === "/data/kv") return { name: "kv", query };
  if (path === "/data/sql") return { name: "sql", query };
  return { name: "missing", query };
}

let listener: () => void = () => {};

/** Sets what runs when the URL changes. */
export function onNavigate(run: () => void) {
  listener = run;
  window.addEventListener("popstate", () => listener());
}

/** Goes to an app URL without a reload. */
export function navigate(href: string, replace = false) {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  listener();
}

/** Changes the query of the current URL without showing a new page (tabs, filters). */
export function setQuery(values: Record<string, string | null>) {
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(values)) {
    if (v === null || v === "") url.searchParams.delete(k);
    else url.searchParams.set(k, v);
  }
  history.replaceState(null, "", url);
}
