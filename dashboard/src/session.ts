// The project API key lives only in sessionStorage: gone when the tab closes, never in
// localStorage or a cookie.
const keyName = "workerbase.apiKey";

export const session = {
  key: (): string | null => sessionStorage.getItem(keyName),
  signIn: (key: string) => sessionStorage.setItem(keyName, key),
  signOut: () => {
    for (const name of Object.keys(sessionStorage))
      if (name.startsWith("workerbase.")) sessionStorage.removeItem(name);
  },
};

/** Unsaved editor text, kept per function for this browser session so nothing is lost. */
export const drafts = {
  get: (id: string): string | null => sessionStorage.getItem(`workerbase.draft.${id}`),
  set: (id: string, code: string) => sessionStorage.setItem(`workerbase.draft.${id}`, code),
  clear: (id: string) => sessionStorage.removeItem(`workerbase.draft.${id}`),
};
