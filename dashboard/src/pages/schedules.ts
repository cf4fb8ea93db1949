import { api, ApiError, fnPath, liveVersion, type Fn, type Schedule } from "../api";
import { nextRuns, timeZones } from "../cron";
import { clearErrors, field, fill, h, showError, toast } from "../dom";

const maxSchedules = 10;
const zoneListId = "wb-time-zones";
const localZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

function formatIn(zone: string) {
  return new Intl.DateTimeFormat(undefined, {
    timeZone: zone,
    weekday: "short",
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    timeZoneName: "short",
  });
}

/** `{}` (the server's default) shows as an empty box; anything else as pretty JSON. */
function bodyText(body: unknown): string {
  if (body === undefined || body === null) return "";
  if (typeof body === "object" && !Array.isArray(body) && Object.keys(body).length === 0) return "";
  return JSON.stringify(body, null, 2);
}

/** The server's field names as the form uses them: `schedules.0.cron` → `schedules[0].cron`. */
function bracketed(err: unknown): unknown {
  if (!(err instanceof ApiError)) return err;
  const details = err.details.map((d) => ({
    ...d,
    field: d.field.replace(/^function\./, "").replace(/^schedules\.(\d+)/, "schedules[$1]"),
  }));
  return new ApiError(err.status, err.message, details);
}

interface Row {
  el: HTMLElement;
  setIndex(i: number): void;
  value(): { cron: string; timezone: string; body: string };
  focus(): void;
}

function scheduleRow(saved: Schedule | null, remove: (row: Row) => void, fn: () => Fn): Row {
  const cron = h("input", {
    name: "cron",
    autocomplete: "off",
    spellcheck: false,
    placeholder: "*/15 * * * *",
    class: "mono",
    value: saved?.cron ?? "",
  });
  const timezone = h("input", {
    name: "timezone",
    list: zoneListId,
    autocomplete: "off",
    spellcheck: false,
    placeholder: "UTC",
    value: saved?.timezone ?? "UTC",
  });
  const body = h("textarea", {
    name: "body",
    rows: 3,
    spellcheck: false,
    placeholder: "{}",
    value: bodyText(saved?.body),
  });
  const legend = h("legend");
  const serverNote = h("p", { class: "muted small server-next" });
  const preview = h("div", { class: "next-runs", "aria-live": "polite" });
  const fields = {
    cron: field("Cron expression", cron, {
      name: "cron",
      hint: "minute hour day-of-month month day-of-week, e.g. 0 9 * * MON-FRI",
    }),
    timezone: field("Time zone", timezone, { name: "timezone" }),
    body: field("Body (JSON)", body, {
      name: "body",
      hint: "What handler() receives as the POST body; scheduled() gets it as event.body. Empty: {}.",
    }),
  };
  const value = () => ({ cron: cron.value, timezone: timezone.value, body: body.value });
  const loaded = JSON.stringify(value());

  function update() {
    const zone = timezone.value.trim() || "UTC";
    // The server's next run applies to what it has; once the row is edited it is stale.
    const unchanged = saved !== null && JSON.stringify(value()) === loaded;
    serverNote.hidden = !unchanged;
    if (saved && unchanged)
      fill(
        serverNote,
        saved.next_run_at
          ? ["Next run on the server: ", formatIn(localZone).format(new Date(saved.next_run_at))]
          : liveVersion(fn())
            ? "Not scheduled on the server yet."
            : "Runs once the function is deployed.",
      );
    const result = nextRuns(cron.value, zone);
    if (result.error !== undefined) {
      fill(preview, h("p", { class: "cron-error", "data-testid": "cron-error" }, result.error));
      return;
    }
    const same = zone === localZone;
    const there = formatIn(zone);
    const here = formatIn(localZone);
    fill(
      preview,
      h(
        "table",
        { class: "runs" },
        h(
          "caption",
          null,
          `Next ${result.runs.length} runs`,
          same ? "" : ` (local time: ${localZone})`,
        ),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", { scope: "col" }, same ? `${zone} (local time)` : zone),
            same ? null : h("th", { scope: "col" }, "Local time"),
          ),
        ),
        h(
          "tbody",
          null,
          result.runs.map((at) =>
            h(
              "tr",
              null,
              h("td", null, h("time", { datetime: at.toISOString() }, there.format(at))),
              same ? null : h("td", null, here.format(at)),
            ),
          ),
        ),
      ),
    );
  }
  cron.addEventListener("input", update);
  timezone.addEventListener("input", update);
  body.addEventListener("input", update);

  const removeButton = h(
    "button",
    { type: "button", class: "small danger remove", onclick: () => remove(row) },
    "Remove",
  );
  const el = h(
    "fieldset",
    { class: "schedule" },
    legend,
    removeButton,
    h("div", { class: "schedule-grid" }, fields.cron, fields.timezone),
    fields.body,
    serverNote,
    preview,
  );
  const row: Row = {
    el,
    setIndex(i) {
      fill(legend, `Schedule ${i + 1}`);
      removeButton.setAttribute("aria-label", `Remove schedule ${i + 1}`);
      for (const [name, f] of Object.entries(fields)) f.dataset.field = `schedules[${i}].${name}`;
    },
    value,
    focus: () => cron.focus(),
  };
  update();
  return row;
}

/** A function's schedules: cron, time zone and body per row, with the next runs shown live. */
export function schedulesTab(initial: Fn, saved: (fn: Fn) => void) {
  let fn = initial;
  let rows: Row[] = [];
  const list = h("div", { class: "schedule-rows" });
  const empty = h(
    "p",
    { class: "muted" },
    "No schedules. Add one to run the live version on a timer.",
  );
  const addButton = h(
    "button",
    { type: "button", class: "secondary", onclick: () => add(null, true) },
    "Add schedule",
  );
  const limitNote = h("span", { class: "muted small" });
  const submit = h("button", { type: "submit" }, "Save schedules");

  const snapshot = () => JSON.stringify(rows.map((r) => r.value()));
  let shown = "";
  let shownSchedules = "";

  function layout() {
    rows.forEach((r, i) => r.setIndex(i));
    fill(list, rows.length ? rows.map((r) => r.el) : empty);
    addButton.disabled = rows.length >= maxSchedules;
    limitNote.textContent = rows.length >= maxSchedules ? `At most ${maxSchedules} schedules.` : "";
  }
  function add(s: Schedule | null, focus = false) {
    if (rows.length >= maxSchedules) return;
    const row = scheduleRow(s, removeRow, () => fn);
    rows.push(row);
    layout();
    if (focus) row.focus();
  }
  function removeRow(row: Row) {
    rows = rows.filter((r) => r !== row);
    clearErrors(form);
    layout();
  }
  function refresh(next: Fn) {
    fn = next;
    shownSchedules = JSON.stringify(next.schedules ?? []);
    rows = [];
    for (const s of next.schedules ?? []) add(s);
    layout();
    shown = snapshot();
  }

  const form: HTMLFormElement = h(
    "form",
    {
      class: "card schedules",
      novalidate: true,
      onsubmit: async (e: Event) => {
        e.preventDefault();
        clearErrors(form);
        const schedules: { cron: string; timezone: string; body?: unknown }[] = [];
        for (const [i, r] of rows.entries()) {
          const v = r.value();
          const item: (typeof schedules)[number] = {
            cron: v.cron.trim(),
            timezone: v.timezone.trim() || "UTC",
          };
          if (v.body.trim()) {
            try {
              item.body = JSON.parse(v.body);
            } catch (err) {
              const field = `schedules[${i}].body`;
              const message = `The body of schedule ${i + 1} is not valid JSON: ${(err as Error).message}`;
              return showError(form, new ApiError(400, message, [{ field, message }]));
            }
          }
          schedules.push(item);
        }
        submit.disabled = true;
        try {
          const { data } = await api<{ data: Fn }>("PATCH", fnPath(fn.id), {
            function: { schedules },
          });
          refresh(data);
          saved(data);
          toast(schedules.length ? "Schedules saved" : "Schedules removed");
        } catch (err) {
          // The rows keep what was typed; the server's message sits beside the field it names.
          showError(form, bracketed(err));
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h2", null, "Schedules"),
    h(
      "p",
      { class: "muted small" },
      "Each schedule runs the live version: scheduled(event, env) when the code defines it, else handler() gets a POST of the body. Changes apply as soon as they are saved.",
    ),
    h(
      "datalist",
      { id: zoneListId },
      timeZones().map((z) => h("option", { value: z })),
    ),
    list,
    h("div", { class: "actions add-row" }, addButton, limitNote),
    h("div", { class: "form-error", role: "alert" }),
    h("div", { class: "actions" }, submit, h("span", { class: "muted small" }, "Ctrl/Cmd+S")),
  );
  refresh(fn);

  return {
    el: h("div", { class: "schedules-tab" }, form),
    refresh(next: Fn) {
      // Rows not saved yet (or refused by the server) stay as typed; unchanged ones stay put.
      if (snapshot() === shown && JSON.stringify(next.schedules ?? []) !== shownSchedules)
        refresh(next);
      else fn = next;
    },
    isDirty: () => snapshot() !== shown,
    submit: () => form.requestSubmit(),
  };
}
