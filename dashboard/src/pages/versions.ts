import type { EditorView } from "@codemirror/view";
import { api, fnPath, type Fn, type Version } from "../api";
import { confirmDialog } from "../dialog";
import { ago, fill, h, toast } from "../dom";

const pageSize = 20;

function settingsText(v: Version): string {
  const parts = [
    `timeout ${v.runtime_config.timeout} s`,
    `memory ${v.runtime_config.memory} MB`,
    v.invoke_response_mode,
  ];
  if (v.runtime_config.compatibility_flags?.length)
    parts.push(v.runtime_config.compatibility_flags.join(", "));
  return parts.join(" · ");
}

/** What differs between two versions' runtime settings, as "timeout: 10 → 30". */
function settingsChanges(a: Version, b: Version): string[] {
  const changes: string[] = [];
  for (const key of ["timeout", "memory"] as const)
    if (a.runtime_config[key] !== b.runtime_config[key])
      changes.push(`${key}: ${a.runtime_config[key]} → ${b.runtime_config[key]}`);
  if (a.invoke_response_mode !== b.invoke_response_mode)
    changes.push(`response mode: ${a.invoke_response_mode} → ${b.invoke_response_mode}`);
  return changes;
}

/**
 * A function's deployed versions, newest first, with paging; a diff of any two, and a
 * rollback (after a confirmation) that makes an older version live.
 */
export function versionsTab(initial: Fn, rolledBack: (fn: Fn) => void) {
  let fn = initial;
  let versions: Version[] = [];
  let cursor: number | null = null;
  let loadedFor = "";
  let visible = false;
  let loading = false;
  const codes = new Map<number, Promise<Version>>();
  let diff: EditorView | null = null;

  const banner = h("div", { class: "error-banner", role: "alert" });
  const list = h("div", { class: "versions-list" });
  const older = h(
    "button",
    { type: "button", class: "secondary small", onclick: () => void loadOlder() },
    "Older versions",
  );
  const pager = h("div", { class: "pager", hidden: true }, older);
  const from = h("select", { name: "from" });
  const to = h("select", { name: "to" });
  const compareButton = h(
    "button",
    { type: "button", class: "small", onclick: () => void compare() },
    "Show diff",
  );
  const compareBar = h(
    "div",
    { class: "toolbar compare" },
    h("label", { class: "inline-label" }, "Compare ", from),
    h("label", { class: "inline-label" }, "with ", to),
    compareButton,
  );
  const diffNote = h("div", { class: "diff-note", "aria-live": "polite" });
  const diffBox = h("div", { class: "diff" });
  const compareCard = h(
    "section",
    { class: "card flush compare-card", hidden: true },
    compareBar,
    h("div", { class: "pad" }, diffNote, diffBox),
  );

  const key = (f: Fn) => `${f.version}:${f.live_version}`;
  const live = () => versions.find((v) => v.live)?.version ?? fn.live_version;

  function code(n: number): Promise<Version> {
    let found = codes.get(n);
    if (!found) {
      found = api<{ data: Version }>("GET", `${fnPath(fn.id)}/versions/${n}`).then((r) => r.data);
      found.catch(() => codes.delete(n));
      codes.set(n, found);
    }
    return found;
  }

  function closeDiff() {
    diff?.destroy();
    diff = null;
    fill(diffBox);
    fill(diffNote);
  }

  async function compare() {
    const a = Number(from.value);
    const b = Number(to.value);
    if (!a || !b) return;
    fill(banner);
    compareButton.disabled = true;
    try {
      const [older, newer] = await Promise.all([code(a), code(b)]);
      closeDiff();
      const changes = settingsChanges(older, newer);
      fill(
        diffNote,
        h(
          "p",
          { class: "muted" },
          a === b
            ? `Version ${a} compared with itself.`
            : older.code === newer.code
              ? `Versions ${a} and ${b} have the same code.`
              : `Changes from version ${a} to version ${b} (red: removed, green: added).`,
        ),
        changes.length ? h("p", { class: "small" }, "Settings: ", changes.join(", ")) : null,
      );
      if (older.code !== newer.code) {
        // The diff view (@codemirror/merge) loads only when there is something to compare.
        const { diffView } = await import("../diff");
        diff = diffView(
          diffBox,
          older.code ?? "",
          newer.code ?? "",
          newer.language === "typescript" ? "typescript" : "javascript",
        );
      }
    } catch (err) {
      fill(banner, `Could not compare the versions: ${(err as Error).message}`);
    } finally {
      compareButton.disabled = false;
    }
  }

  async function rollBack(v: Version) {
    const current = live();
    const ok = await confirmDialog({
      title: `Roll back to version ${v.version}?`,
      body: [
        h(
          "p",
          null,
          `Version ${v.version} becomes live: from now on invocations and schedules run its code and settings`,
          current ? `, instead of version ${current}.` : ".",
        ),
        h(
          "p",
          { class: "muted small" },
          "Newer versions stay in this list, and the draft in the editor does not change. The next deploy makes a new version live.",
        ),
      ],
      confirm: `Make version ${v.version} live`,
    });
    if (!ok) return;
    fill(banner);
    try {
      const { data } = await api<{ data: Fn }>("POST", `${fnPath(fn.id)}/rollback`, {
        version: v.version,
      });
      toast(`Version ${data.live_version ?? v.version} is live`);
      rolledBack(data); // refreshes the header and, through refresh(), this list
    } catch (err) {
      fill(banner, `Could not roll back to version ${v.version}: ${(err as Error).message}`);
    }
  }

  function row(v: Version): HTMLElement {
    return h(
      "tr",
      { "data-version": v.version, class: v.live ? "live" : null },
      h(
        "td",
        { class: "version", "data-label": "Version" },
        h("strong", null, `v${v.version}`),
        v.live ? h("span", { class: "badge deployed live-mark" }, "live") : null,
      ),
      h("td", { class: "deployed", "data-label": "Deployed" }, ago(v.created_at)),
      h(
        "td",
        { class: "message", "data-label": "Message" },
        v.message ? v.message : h("span", { class: "muted" }, "no message"),
      ),
      h("td", { class: "settings small", "data-label": "Settings" }, settingsText(v)),
      h(
        "td",
        { class: "right action" },
        v.live
          ? null
          : h(
              "button",
              {
                type: "button",
                class: "small secondary",
                "aria-label": `Roll back to version ${v.version}`,
                onclick: () => void rollBack(v),
              },
              "Roll back",
            ),
      ),
    );
  }

  function options(select: HTMLSelectElement, preferred: number | undefined) {
    const kept = Number(select.value) || preferred;
    fill(
      select,
      versions.map((v) =>
        h(
          "option",
          { value: v.version, selected: v.version === kept },
          `v${v.version}${v.live ? " (live)" : ""}`,
        ),
      ),
    );
  }

  function render() {
    if (versions.length === 0) {
      fill(
        list,
        h(
          "p",
          { class: "muted pad" },
          "No versions yet. Each deploy stores one; deploy the function to see it here.",
        ),
      );
    } else {
      fill(
        list,
        h(
          "table",
          { class: "table versions" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", null, "Version"),
              h("th", null, "Deployed"),
              h("th", null, "Message"),
              h("th", null, "Runtime settings"),
              h("th"),
            ),
          ),
          h("tbody", null, versions.map(row)),
        ),
      );
    }
    pager.hidden = cursor === null;
    compareCard.hidden = versions.length < 2;
    options(from, versions[1]?.version);
    options(to, versions[0]?.version);
  }

  async function fetchPage(after: number | null) {
    const query = `limit=${pageSize}${after === null ? "" : `&after=${after}`}`;
    return api<{ data: Version[]; meta: { next_cursor: number | null } }>(
      "GET",
      `${fnPath(fn.id)}/versions?${query}`,
    );
  }

  async function load() {
    if (loading) return;
    loading = true;
    loadedFor = key(fn);
    try {
      const page = await fetchPage(null);
      versions = page.data;
      cursor = page.meta.next_cursor;
      fill(banner);
      render();
    } catch (err) {
      loadedFor = "";
      fill(banner, `Could not load the versions: ${(err as Error).message}`);
    } finally {
      loading = false;
    }
    // The function changed while this page of versions was on its way.
    if (visible && loadedFor && key(fn) !== loadedFor) void load();
  }

  async function loadOlder() {
    if (cursor === null || loading) return;
    loading = true;
    older.disabled = true;
    try {
      const page = await fetchPage(cursor);
      const seen = new Set(versions.map((v) => v.version));
      versions = versions.concat(page.data.filter((v) => !seen.has(v.version)));
      cursor = page.meta.next_cursor;
      render();
    } catch (err) {
      fill(banner, `Could not load older versions: ${(err as Error).message}`);
    } finally {
      loading = false;
      older.disabled = false;
    }
  }

  return {
    el: h(
      "div",
      { class: "versions-tab" },
      banner,
      h("section", { class: "card flush" }, h("h2", { class: "pad" }, "Versions"), list, pager),
      compareCard,
    ),
    /** The function changed (a deploy or a rollback): the list follows while shown. */
    refresh(next: Fn) {
      fn = next;
      if (visible && key(fn) !== loadedFor) void load();
    },
    setVisible(shown: boolean) {
      visible = shown;
      if (shown && key(fn) !== loadedFor) void load();
    },
    dispose: closeDiff,
  };
}
