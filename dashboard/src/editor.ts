import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { javascript } from "@codemirror/lang-javascript";
import {
  bracketMatching,
  defaultHighlightStyle,
  indentOnInput,
  syntaxHighlighting,
} from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import {
  EditorState,
  Prec,
  RangeSet,
  StateEffect,
  StateField,
  type Extension,
} from "@codemirror/state";
import {
  Decoration,
  drawSelection,
  EditorView,
  GutterMarker,
  gutterLineClass,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
  WidgetType,
  type DecorationSet,
} from "@codemirror/view";
import type { Language } from "./api";

/** Where a deploy failed, from its `deploy_error`. */
export interface ErrorMark {
  line: number;
  column: number | null;
  message: string;
}

/** Reads "at line L, column C" (syntax errors) or "(line L)" from a deploy error. */
export function errorLocation(message: string | null): ErrorMark | null {
  if (!message) return null;
  const full = /\bline (\d+), column (\d+)/.exec(message);
  if (full) return { line: Number(full[1]), column: Number(full[2]), message };
  const line = /\bline (\d+)\b/.exec(message);
  return line ? { line: Number(line[1]), column: null, message } : null;
}

export const setErrorMark = StateEffect.define<ErrorMark | null>();

class ErrorWidget extends WidgetType {
  constructor(readonly message: string) {
    super();
  }
  eq(other: ErrorWidget) {
    return other.message === this.message;
  }
  toDOM() {
    const el = document.createElement("div");
    el.className = "cm-errorMessage";
    el.textContent = this.message;
    return el;
  }
}

const errorGutter = new (class extends GutterMarker {
  elementClass = "cm-errorGutter";
})();

interface Marks {
  deco: DecorationSet;
  gutter: RangeSet<GutterMarker>;
}

const none: Marks = { deco: Decoration.none, gutter: RangeSet.empty };

function build(state: EditorState, mark: ErrorMark | null): Marks {
  if (!mark) return none;
  const line = state.doc.line(Math.min(Math.max(mark.line, 1), state.doc.lines));
  const ranges = [
    Decoration.line({ class: "cm-errorLine", attributes: { title: mark.message } }).range(
      line.from,
    ),
  ];
  if (mark.column !== null && line.length > 0) {
    const from = line.from + Math.min(Math.max(mark.column - 1, 0), line.length - 1);
    ranges.push(Decoration.mark({ class: "cm-errorColumn" }).range(from, from + 1));
  }
  ranges.push(
    Decoration.widget({ widget: new ErrorWidget(mark.message), block: true, side: 1 }).range(
      line.to,
    ),
  );
  return {
    deco: Decoration.set(ranges, true),
    gutter: RangeSet.of([errorGutter.range(line.from)]),
  };
}

/** The marked line of a failed deploy: follows edits until the next deploy replaces it. */
const errorMarks = StateField.define<Marks>({
  create: () => none,
  update(value, tr) {
    for (const effect of tr.effects)
      if (effect.is(setErrorMark)) return build(tr.state, effect.value);
    if (!tr.docChanged) return value;
    return { deco: value.deco.map(tr.changes), gutter: value.gutter.map(tr.changes) };
  },
  provide: (field) => [
    EditorView.decorations.from(field, (v) => v.deco),
    gutterLineClass.from(field, (v) => v.gutter),
  ],
});

/** Highlighting and gutters shared by the editor and the diff view, for the code's language. */
export function codeBasics(language?: Language): Extension {
  return [
    lineNumbers(),
    highlightActiveLineGutter(),
    drawSelection(),
    syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
    javascript({ typescript: language === "typescript" }),
    EditorView.lineWrapping,
  ];
}

/** The function's code editor: JavaScript or TypeScript, line numbers, save and deploy shortcuts. */
export function createEditor(
  parent: HTMLElement,
  doc: string,
  handlers: { change: () => void; save: () => void; deploy: () => void },
  language?: Language,
): EditorView {
  return new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        codeBasics(language),
        history(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        errorMarks,
        Prec.highest(
          keymap.of([
            { key: "Mod-s", preventDefault: true, run: () => (handlers.save(), true) },
            { key: "Mod-Enter", preventDefault: true, run: () => (handlers.deploy(), true) },
          ]),
        ),
        keymap.of([
          ...closeBracketsKeymap,
          ...defaultKeymap,
          ...searchKeymap,
          ...historyKeymap,
          indentWithTab,
        ]),
        EditorView.contentAttributes.of({ "aria-label": "Function code" }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) handlers.change();
        }),
      ],
    }),
  });
}

/** Marks (or clears) the line of a deploy error and scrolls it into view. */
export function markError(view: EditorView, mark: ErrorMark | null) {
  const effects: StateEffect<unknown>[] = [setErrorMark.of(mark)];
  if (mark) {
    const line = view.state.doc.line(Math.min(Math.max(mark.line, 1), view.state.doc.lines));
    effects.push(EditorView.scrollIntoView(line.from, { y: "center" }));
  }
  view.dispatch({ effects });
}

/** Replaces the editor's whole text (a restored or reloaded draft). */
export function setText(view: EditorView, text: string) {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
}
