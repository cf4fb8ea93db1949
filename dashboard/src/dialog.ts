import { h, type Child } from "./dom";

let dialogIds = 0;

/**
 * Asks a yes/no question in a modal <dialog> (focus stays inside, Esc cancels) and resolves
 * with true when the user confirms. Not window.confirm(): that one blocks the page, cannot
 * say much, and looks like the browser rather than the app.
 */
export function confirmDialog(options: {
  title: string;
  body: Child;
  confirm: string;
  cancel?: string;
}): Promise<boolean> {
  const id = `dlg${++dialogIds}`;
  const confirmButton = h("button", { type: "submit", value: "confirm" }, options.confirm);
  const dialog = h(
    "dialog",
    { class: "confirm", "aria-labelledby": `${id}-title`, "aria-describedby": `${id}-body` },
    h(
      "form",
      { method: "dialog" },
      h("h2", { id: `${id}-title` }, options.title),
      h("div", { id: `${id}-body`, class: "dialog-body" }, options.body),
      h(
        "div",
        { class: "actions" },
        confirmButton,
        h(
          "button",
          { type: "submit", value: "cancel", class: "ghost" },
          options.cancel ?? "Cancel",
        ),
      ),
    ),
  );
  document.body.append(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        resolve(dialog.returnValue === "confirm");
        dialog.remove();
      },
      { once: true },
    );
    dialog.showModal();
    confirmButton.focus();
  });
}
