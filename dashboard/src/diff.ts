import { unifiedMergeView } from "@codemirror/merge";
import { EditorState } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import type { Language } from "./api";
import { codeBasics } from "./editor";

/** A read-only view of `modified` with the changes since `original` marked (unified diff). */
export function diffView(
  parent: HTMLElement,
  original: string,
  modified: string,
  language?: Language,
): EditorView {
  return new EditorView({
    parent,
    state: EditorState.create({
      doc: modified,
      extensions: [
        codeBasics(language),
        EditorState.readOnly.of(true),
        EditorView.editable.of(false),
        unifiedMergeView({
          original,
          mergeControls: false,
          highlightChanges: true,
          gutter: true,
          collapseUnchanged: { margin: 3, minSize: 6 },
        }),
      ],
    }),
  });
}
