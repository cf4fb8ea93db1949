import fs from "node:fs";
import { CliError, type Flags, type ParsedArgs } from "./args.js";

/** One `workerbase <noun> <verb>` command. */
export interface Command {
  /** `functions list`, or a lone noun such as `pull`. */
  name: string;
  /** Arguments and flags as help shows them, after the name. */
  usage: string;
  summary: string;
  /** How many positional arguments it takes, at least and at most. */
  args: [number, number];
  flags: Flags;
  run: (args: ParsedArgs) => Promise<number | void>;
}

export const jsonFlag: Flags = {
  json: { type: "boolean", help: "print the API's JSON unchanged" },
};

/** Reads a text file named on the command line; a missing one is a one-line error. */
export function readUserFile(file: string, what = "file"): string {
  return readUserBytes(file, what).toString("utf8");
}

/** Reads a file named on the command line as bytes. */
export function readUserBytes(file: string, what = "file"): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(
      code === "ENOENT" ? `${what} ${file} does not exist` : `cannot read ${what} ${file}: ${code}`,
    );
  }
}

/** All of stdin, as bytes. */
export async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Path segment for an id or slug given by the user. */
export function seg(value: string): string {
  return encodeURIComponent(value);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
