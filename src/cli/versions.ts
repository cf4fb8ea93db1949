import { CliError, UsageError, intFlag, stringFlag, type ParsedArgs } from "./args.js";
import { jsonFlag, seg, type Command } from "./command.js";
import { platform, type Client } from "./http.js";
import { out, table, when } from "./output.js";
import { notFound, type FunctionResource } from "./functions.js";

/** A stored version as `GET /functions/{id}/versions` lists it (without code). */
export interface Version {
  version: number;
  language?: string;
  message: string | null;
  created_at: string;
  live: boolean;
}

interface VersionPage {
  data: Version[];
  meta: { next_cursor: number | null };
}

/** The largest page the API serves. */
const maxPage = 100;

function listPage(api: Client, fn: string, limit?: number, after?: number): Promise<VersionPage> {
  return api.call<VersionPage>("GET", `/functions/${seg(fn)}/versions`, {
    query: { limit, after },
    notFound: notFound(fn),
  });
}

async function getFunction(api: Client, fn: string): Promise<FunctionResource> {
  const { data } = await api.call<{ data: FunctionResource }>("GET", `/functions/${seg(fn)}`, {
    notFound: notFound(fn),
  });
  return data;
}

/** The version a rollback without `--to` goes to: the newest one older than the live one. */
async function previousVersion(api: Client, fn: FunctionResource): Promise<number> {
  if (fn.live_version === null) {
    throw new CliError(
      `${fn.slug} has never been deployed, so there is no version to roll back to`,
    );
  }
  const page = await listPage(api, fn.id, 1, fn.live_version);
  const older = page.data[0];
  if (!older) {
    throw new CliError(
      `version ${fn.live_version} is live and there is no older version to roll back to`,
    );
  }
  return older.version;
}

/** The version `--to` names. */
function targetFlag(args: ParsedArgs): number | undefined {
  const value = stringFlag(args, "to");
  if (value === undefined) return undefined;
  if (!/^[1-9]\d{0,14}$/.test(value)) {
    throw new UsageError(`--to must be a version number (1, 2, ...), got "${value}"`);
  }
  return Number(value);
}

export const versionCommands: Command[] = [
  {
    name: "functions versions",
    usage: "<fn> [--limit n] [--all] [--json]",
    summary: "the deployed versions, newest first, with the live one marked",
    args: [1, 1],
    flags: {
      ...jsonFlag,
      limit: { type: "string", value: "n", help: "how many (1..100, default 20)" },
      all: { type: "boolean", help: "every stored version, page after page" },
    },
    async run(args) {
      const fn = args.positionals[0];
      const limit = intFlag(args, "limit", 1, maxPage);
      const api = platform(args);
      const first = await listPage(api, fn, args.flags.all ? (limit ?? maxPage) : limit);
      if (args.flags.json && !args.flags.all) return out.json(first);
      let page = first;
      const versions = [...page.data];
      while (args.flags.all && page.meta.next_cursor !== null) {
        page = await listPage(api, fn, limit ?? maxPage, page.meta.next_cursor);
        versions.push(...page.data);
      }
      // --all --json: every page's data in one list, as one page of the API would have it.
      if (args.flags.json) return out.json({ data: versions, meta: { next_cursor: null } });
      if (versions.length === 0) {
        out.line(`${fn} has no versions yet; deploy it with: workerbase functions deploy ${fn}`);
        return;
      }
      out.line(
        table(
          ["VERSION", "LIVE", "CREATED", "MESSAGE"],
          versions.map((v) => [
            v.version,
            v.live ? out.paint.green("*") : "",
            when(v.created_at),
            v.message,
          ]),
        ),
      );
      if (page.meta.next_cursor !== null) {
        out.line(
          out.paint.dim(`older versions: workerbase functions versions ${fn} --all (or --limit n)`),
        );
      }
    },
  },
  {
    name: "functions rollback",
    usage: "<fn> [--to N] [--json]",
    summary: "make an earlier version live at once (default: the one before the live one)",
    args: [1, 1],
    flags: {
      ...jsonFlag,
      to: { type: "string", value: "N", help: "the version to make live" },
    },
    async run(args) {
      const fn = args.positionals[0];
      const api = platform(args);
      const before = await getFunction(api, fn);
      const target = targetFlag(args) ?? (await previousVersion(api, before));
      // No notFound here: a 404 names the unknown version, and is shown in the server's words.
      const body = await api.call<{ data: FunctionResource }>(
        "POST",
        `/functions/${seg(before.id)}/rollback`,
        { json: { version: target } },
      );
      if (args.flags.json) return out.json(body);
      const after = body.data;
      if (before.live_version === after.live_version) {
        out.line(`version ${after.live_version} of ${after.slug} is already live; nothing changed`);
        return;
      }
      out.line(
        `${out.paint.green("✓")} Rolled back ${after.slug} to version ${after.live_version} (was ${before.live_version})`,
      );
      out.line(
        out.paint.dim(
          `the draft code is unchanged; the next deploy creates version ${after.version + 1} and makes it live`,
        ),
      );
    },
  },
];
