import { api, fnPath, type DeployedCode, type Fn } from "../api";
import { field, fill, h } from "../dom";

/**
 * Fills `dialog` with the draft against the live version (a diff, and changed runtime
 * settings) and a field for a message saying what changed, and opens it; `confirm` runs with
 * that message when the user deploys (button, Enter in the message, or Ctrl/Cmd+Enter).
 */
export async function showReview(
  dialog: HTMLDialogElement,
  fn: Fn,
  draft: string,
  unsaved: boolean,
  confirm: (message: string) => void,
): Promise<void> {
  const { data: deployed } = await api<{ data: DeployedCode }>(
    "GET",
    `${fnPath(fn.id)}/deployed_code`,
  );
  const settings: string[] = [];
  for (const key of ["timeout", "memory"] as const) {
    const live = deployed.runtime_config?.[key];
    if (live !== undefined && live !== fn.runtime_config[key])
      settings.push(`${key}: ${live} → ${fn.runtime_config[key]}`);
  }
  const message = h("input", {
    name: "message",
    autocomplete: "off",
    maxlength: 1000,
    placeholder: "What changed, e.g. greet in Spanish",
  });
  const go = () => {
    dialog.close();
    confirm(message.value.trim());
  };
  const diffBox = h("div", { class: "diff" });
  const deployButton = h("button", { type: "button", class: "confirm", onclick: go }, "Deploy");
  fill(
    dialog,
    h("h2", null, `Deploy ${fn.name}`),
    h(
      "p",
      { class: "muted" },
      deployed.code === null
        ? "First deploy: this code has never run."
        : draft === deployed.code
          ? `No code changes since version ${deployed.version}.`
          : `Changes since the live version ${deployed.version} (red: removed, green: added).`,
      unsaved ? " Unsaved changes will be saved first." : "",
    ),
    settings.length ? h("p", { class: "small" }, "Settings: ", settings.join(", ")) : null,
    diffBox,
    h(
      "form",
      {
        class: "deploy-message",
        onsubmit: (e: Event) => {
          e.preventDefault();
          go();
        },
      },
      field("Message (optional)", message, {
        name: "message",
        hint: "Shown beside this version on the Versions tab.",
      }),
    ),
    h(
      "div",
      { class: "actions" },
      deployButton,
      h("button", { type: "button", class: "ghost", onclick: () => dialog.close() }, "Cancel"),
      h("span", { class: "muted small" }, "Ctrl/Cmd+Enter deploys, Esc cancels"),
    ),
  );
  dialog.onkeydown = (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      go();
    }
  };
  dialog.showModal();
  message.focus({ preventScroll: true });
  if (deployed.code !== null && deployed.code !== draft) {
    // The diff view (@codemirror/merge) loads only when there is something to compare.
    const { diffView } = await import("../diff");
    if (!dialog.open) return;
    const diff = diffView(diffBox, deployed.code, draft, fn.language);
    dialog.addEventListener("close", () => diff.destroy(), { once: true });
  }
}
