/** Colour only on a terminal, never with NO_COLOR (https://no-color.org) or TERM=dumb. */
export function colorEnabled(stream: NodeJS.WriteStream): boolean {
  return Boolean(stream.isTTY) && !process.env.NO_COLOR && process.env.TERM !== "dumb";
}

function painter(stream: NodeJS.WriteStream) {
  const on = colorEnabled(stream);
  const code = (open: number, close: number) => (text: string) =>
    on ? `\x1b[${open}m${text}\x1b[${close}m` : text;
  return {
    bold: code(1, 22),
    dim: code(2, 22),
    red: code(31, 39),
    green: code(32, 39),
    yellow: code(33, 39),
    cyan: code(36, 39),
  };
}

export const out = {
  paint: painter(process.stdout),
  line(text = "") {
    process.stdout.write(text + "\n");
  },
  /** Prints the API's JSON as it came. */
  json(value: unknown) {
    process.stdout.write(JSON.stringify(value, null, 2) + "\n");
  },
};

export const err = {
  paint: painter(process.stderr),
  line(text = "") {
    process.stderr.write(text + "\n");
  },
};

/** Strips ANSI escapes, to measure what a terminal shows. */
function visible(text: string): string {
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

function cell(value: unknown, max: number): string {
  const text = value === null || value === undefined ? "-" : String(value);
  const flat = text.replace(/\s*\n\s*/g, " ");
  return flat.length > max ? flat.slice(0, max - 1) + "…" : flat;
}

/** A plain-text table with a bold header; long cells are cut to `maxCell` characters. */
export function table(headers: string[], rows: unknown[][], maxCell = 60): string {
  const cells = rows.map((row) => row.map((v) => cell(v, maxCell)));
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...cells.map((row) => visible(row[i] ?? "").length)),
  );
  const pad = (text: string, i: number) =>
    i === headers.length - 1 ? text : text + " ".repeat(widths[i] - visible(text).length);
  const lines = [out.paint.bold(headers.map(pad).join("  ").trimEnd())];
  for (const row of cells) lines.push(row.map(pad).join("  ").trimEnd());
  return lines.join("\n");
}

/** `key: value` lines, keys aligned. */
export function details(pairs: [string, unknown][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs
    .map(([k, v]) => {
      const text =
        v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v);
      return `${out.paint.dim((k + ":").padEnd(width + 1))} ${text}`;
    })
    .join("\n");
}

/** A spinner on stderr while something is awaited; silent when stderr is not a terminal. */
export function spinner(text: string): { stop: () => void } {
  if (!process.stderr.isTTY) return { stop() {} };
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let i = 0;
  const draw = () =>
    process.stderr.write(`\r\x1b[K${err.paint.cyan(frames[i++ % frames.length])} ${text}`);
  draw();
  const timer = setInterval(draw, 80);
  return {
    stop() {
      clearInterval(timer);
      process.stderr.write("\r\x1b[K");
    },
  };
}

/** A short relative or absolute time for tables. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "-";
  const ms = Date.now() - Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  if (ms < 60_000) return `${Math.max(0, Math.round(ms / 1000))}s ago`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)}m ago`;
  if (ms < 86_400_000) return `${Math.round(ms / 3_600_000)}h ago`;
  return iso.slice(0, 10);
}
