import type { EditorView } from "@codemirror/view";
import { api, ApiError, fnPath, liveVersion, type Fn } from "../api";
import { ago, copyButton, fill, h, sleep, statusBadge, toast } from "../dom";
import { createEditor, errorLocation, markError, setText } from "../editor";
import { setQuery, type Page } from "../router";
import { drafts } from "../session";
import { invocationsTab } from "./invocations";
import { showReview } from "./review";
import { schedulesTab } from "./schedules";
import { secretsTab } from "./secrets";
import { settingsTab } from "./settings";
import { testPanel } from "./test-panel";
import { versionsTab } from "./versions";

const tabs = ["code", "invocations", "versions", "schedules", "secrets", "settings"] as const;
type Tab = (typeof tabs)[number];
const tabLabels: Record<Tab, string> = {
  code: "Code",
  invocations: "Invocations",
  versions: "Versions",
  schedules: "Schedules",
  secrets: "Secrets",
  settings: "Settings",
};

/**
 * One function: code editor with deploy and test panel, invocations, versions (diff and
 * rollback), schedules, secrets, settings.
 */
export function functionPage(idOrSlug: string, query: URLSearchParams): Page {
  const el = h("div", { class: "function-page" }, h("p", { class: "muted" }, "Loading…"));
  const cleanup: (() => void)[] = [];
  let disposed = false;
  let canLeave = () => true;

  void (async () => {
    let fn: Fn;
    try {
      fn = (await api<{ data: Fn }>("GET", fnPath(idOrSlug))).data;
    } catch (err) {
      fill(
        el,
        h(
          "div",
          { class: "card" },
          h(
            "h1",
            null,
            err instanceof ApiError && err.status === 404
              ? "Function not found"
              : "Could not load the function",
          ),
          h("p", { class: "error" }, (err as Error).message),
          h("a", { href: "/", "data-link": true }, "Back to functions"),
        ),
      );
      return;
    }
    if (disposed) return;
    const view = build(fn, query.get("tab") as Tab, cleanup);
    canLeave = view.canLeave;
    fill(el, view.el);
  })();

  return {
    title: "Function",
    el,
    canLeave: () => canLeave(),
    dispose: () => {
      disposed = true;
      for (const fn of cleanup) fn();
    },
  };
}

function build(initial: Fn, firstTab: Tab | null, cleanup: (() => void)[]) {
  let fn = initial;
  let saved = fn.code ?? "";
  let deploying = false;
  document.title = `${fn.name} · Workerbase`;

  // Header: name, live status, version, access, endpoint.
  const title = h("h1");
  const meta = h("div", { class: "meta" });
  function renderHeader() {
    fill(title, fn.name);
    const live = liveVersion(fn);
    fill(
      meta,
      statusBadge(fn.status),
      h(
        "span",
        { class: "version", "data-testid": "live-version" },
        live ? `v${live} live` : "not deployed",
        live && fn.version > live
          ? h("span", { class: "muted" }, ` (rolled back from v${fn.version})`)
          : null,
      ),
      h("span", { class: "muted" }, "last deploy ", ago(fn.last_deployed_at)),
      h(
        "span",
        { class: "pill", "data-testid": "language" },
        fn.language === "typescript" ? "TypeScript" : "JavaScript",
      ),
      h(
        "span",
        { class: `pill ${fn.public_endpoint ? "public" : ""}` },
        fn.public_endpoint ? "public" : "private",
      ),
      h(
        "span",
        { class: "endpoint" },
        h("code", { class: "url", title: fn.endpoint_url }, fn.endpoint_url),
        copyButton(() => fn.endpoint_url),
      ),
    );
  }
  renderHeader();
  function update(next: Fn) {
    fn = { ...fn, ...next };
    renderHeader();
    settings.refresh(fn);
    test.refresh(fn);
    versions.refresh(fn);
    schedules.refresh(fn);
  }

  // Code tab.
  const editorBox = h("div", { class: "editor" });
  const dirtyNote = h("span", { class: "muted small", "aria-live": "polite" });
  const deployNote = h("div", { class: "deploy-note", role: "status", "aria-live": "polite" });
  const codeError = h("div", { class: "form-error", role: "alert" });
  const restored = h("div", { class: "notice", hidden: true });
  const saveButton = h(
    "button",
    { type: "button", class: "secondary", title: "Ctrl/Cmd+S", onclick: () => void save() },
    "Save draft",
  );
  const deployButton = h(
    "button",
    { type: "button", title: "Ctrl/Cmd+Enter", onclick: () => void review() },
    "Deploy…",
  );

  const isDirty = () => editor.state.doc.toString() !== saved;
  let backupTimer: number | undefined;
  function changed() {
    dirtyNote.textContent = isDirty() ? "Unsaved changes" : "Saved";
    clearTimeout(backupTimer);
    backupTimer = window.setTimeout(() => {
      const text = editor.state.doc.toString();
      if (text === saved) drafts.clear(fn.id);
      else drafts.set(fn.id, text);
    }, 300);
  }
  const editor: EditorView = createEditor(
    editorBox,
    saved,
    { change: changed, save: () => void save(), deploy: () => void review() },
    fn.language,
  );
  cleanup.push(
    () => editor.destroy(),
    () => clearTimeout(backupTimer),
  );

  // Unsaved text from earlier in this browser session comes back.
  const backup = drafts.get(fn.id);
  if (backup !== null && backup !== saved) {
    setText(editor, backup);
    fill(
      restored,
      "Unsaved changes from this browser session were restored. ",
      h(
        "button",
        {
          type: "button",
          class: "small ghost",
          onclick: () => {
            setText(editor, saved);
            drafts.clear(fn.id);
            restored.hidden = true;
          },
        },
        "Discard them",
      ),
    );
    restored.hidden = false;
  }

  function showDeployError() {
    const mark = errorLocation(fn.deploy_error);
    markError(editor, mark);
    if (!fn.deploy_error) {
      fill(deployNote);
      deployNote.className = "deploy-note";
      return;
    }
    deployNote.className = "deploy-note failed";
    fill(
      deployNote,
      h(
        "strong",
        null,
        fn.status === "deployed"
          ? `Deploy failed; version ${liveVersion(fn)} is still live. `
          : "Deploy failed. ",
      ),
      h("span", { class: "mono" }, fn.deploy_error),
      mark
        ? h(
            "button",
            { type: "button", class: "small ghost", onclick: () => markError(editor, mark) },
            `Go to line ${mark.line}`,
          )
        : null,
    );
  }
  showDeployError();
  changed();

  async function save(): Promise<boolean> {
    const code = editor.state.doc.toString();
    fill(codeError);
    saveButton.disabled = true;
    try {
      const { data } = await api<{ data: Fn }>("PATCH", fnPath(fn.id), { function: { code } });
      saved = code;
      update(data);
      restored.hidden = true;
      if (editor.state.doc.toString() === saved) drafts.clear(fn.id);
      changed();
      return true;
    } catch (err) {
      // The text stays in the editor (and in this session's backup): nothing is lost.
      codeError.textContent = `Not saved: ${(err as Error).message}`;
      return false;
    } finally {
      saveButton.disabled = false;
    }
  }

  const dialog = h("dialog", { class: "review", "aria-label": "Review and deploy" });
  cleanup.push(() => dialog.close());

  async function review() {
    if (deploying || dialog.open) return;
    try {
      const draft = editor.state.doc.toString();
      await showReview(dialog, fn, draft, isDirty(), (message) => void deploy(message));
    } catch (err) {
      codeError.textContent = (err as Error).message;
    }
  }

  async function deploy(message = "") {
    if (deploying) return;
    deploying = true;
    deployButton.disabled = true;
    fill(codeError);
    try {
      if (isDirty() && !(await save())) return;
      deployNote.className = "deploy-note running";
      fill(deployNote, h("span", { class: "spinner" }), "Deploying…");
      await api("POST", `${fnPath(fn.id)}/deploy`, message ? { message } : undefined);
      update({ ...fn, status: "deploying" });
      const deadline = Date.now() + 120_000;
      while (fn.status === "deploying" && Date.now() < deadline) {
        await sleep(400);
        update((await api<{ data: Fn }>("GET", fnPath(fn.id))).data);
      }
      showDeployError();
      if (fn.status === "deployed" && !fn.deploy_error) {
        deployNote.className = "deploy-note ok";
        fill(deployNote, `Deployed version ${fn.version}.`);
        toast(`Deployed version ${fn.version}`);
      }
    } catch (err) {
      deployNote.className = "deploy-note failed";
      fill(deployNote, (err as Error).message);
    } finally {
      deploying = false;
      deployButton.disabled = false;
    }
  }

  // Ctrl/Cmd+S and Ctrl/Cmd+Enter anywhere on the page (the editor handles its own).
  const onKey = (e: KeyboardEvent) => {
    if (e.defaultPrevented || !(e.ctrlKey || e.metaKey) || dialog.open) return;
    if (e.key.toLowerCase() === "s") {
      e.preventDefault();
      if (current === "settings") settings.submit();
      else if (current === "schedules") schedules.submit();
      else void save();
    } else if (e.key === "Enter" && current === "code") {
      e.preventDefault();
      void review();
    }
  };
  window.addEventListener("keydown", onKey);
  cleanup.push(() => window.removeEventListener("keydown", onKey));

  // A deploy started elsewhere: follow it.
  if (fn.status === "deploying") {
    void (async () => {
      while (fn.status === "deploying") {
        await sleep(500);
        try {
          update((await api<{ data: Fn }>("GET", fnPath(fn.id))).data);
        } catch {
          return;
        }
      }
      showDeployError();
    })();
  }

  const test = testPanel(fn);
  cleanup.push(test.dispose);
  const codePanel = h(
    "div",
    { class: "code-layout" },
    h(
      "section",
      { class: "card flush code-card" },
      h("div", { class: "toolbar" }, saveButton, deployButton, dirtyNote),
      restored,
      codeError,
      deployNote,
      editorBox,
    ),
    test.el,
  );

  const invocations = invocationsTab(fn.id);
  cleanup.push(invocations.dispose);
  const versions = versionsTab(fn, update);
  cleanup.push(versions.dispose);
  const schedules = schedulesTab(fn, update);
  const secrets = secretsTab(fn.id);
  const settings = settingsTab(fn, update);

  const panels: Record<Tab, HTMLElement> = {
    code: codePanel,
    invocations: invocations.el,
    versions: versions.el,
    schedules: schedules.el,
    secrets: secrets.el,
    settings: settings.el,
  };
  const buttons = {} as Record<Tab, HTMLButtonElement>;
  let current: Tab = tabs.includes(firstTab as Tab) ? (firstTab as Tab) : "code";
  function select(tab: Tab) {
    current = tab;
    for (const t of tabs) {
      panels[t].hidden = t !== tab;
      buttons[t].setAttribute("aria-selected", String(t === tab));
    }
    setQuery({ tab: tab === "code" ? null : tab });
    invocations.setVisible(tab === "invocations");
    versions.setVisible(tab === "versions");
    if (tab === "secrets") void secrets.load();
    if (tab === "code") editor.requestMeasure();
  }
  const tabBar = h(
    "div",
    { class: "tabs", role: "tablist" },
    tabs.map(
      (t) =>
        (buttons[t] = h(
          "button",
          { type: "button", role: "tab", "data-tab": t, onclick: () => select(t) },
          tabLabels[t],
        )),
    ),
  );
  for (const t of tabs) panels[t].setAttribute("role", "tabpanel");
  select(current);

  return {
    canLeave: () => !isDirty() && !schedules.isDirty(),
    el: h(
      "div",
      null,
      h(
        "div",
        { class: "page-head fn-head" },
        h(
          "div",
          null,
          h("a", { href: "/", "data-link": true, class: "back" }, "← Functions"),
          title,
          meta,
        ),
      ),
      tabBar,
      Object.values(panels),
      dialog,
    ),
  };
}
