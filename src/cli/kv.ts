import { UsageError, intFlag, stringFlag } from "./args.js";
import { jsonFlag, readStdin, readUserBytes, seg, type Command } from "./command.js";
import { platform } from "./http.js";
import { out, table } from "./output.js";

interface KeyList {
  keys: { name: string; expiration?: number; metadata?: unknown }[];
  list_complete: boolean;
  cursor?: string;
}

export const kvCommands: Command[] = [
  {
    name: "kv list",
    usage: "[--prefix p] [--limit n] [--cursor c] [--json]",
    summary: "keys of the project's KV namespace",
    args: [0, 0],
    flags: {
      ...jsonFlag,
      prefix: { type: "string", value: "p", help: "only keys starting with p" },
      limit: { type: "string", value: "n", help: "at most n keys (1..1000)" },
      cursor: { type: "string", value: "c", help: "continue a listing" },
    },
    async run(args) {
      const body = await platform(args).call<{ data: KeyList }>("GET", "/kv/keys", {
        query: {
          prefix: stringFlag(args, "prefix"),
          limit: intFlag(args, "limit", 1, 1000),
          cursor: stringFlag(args, "cursor"),
        },
      });
      if (args.flags.json) return out.json(body);
      const { keys, list_complete, cursor } = body.data;
      if (keys.length === 0) out.line("No keys.");
      else {
        out.line(
          table(
            ["KEY", "EXPIRES", "METADATA"],
            keys.map((k) => [
              k.name,
              k.expiration ? new Date(k.expiration * 1000).toISOString() : "-",
              k.metadata === undefined ? "-" : JSON.stringify(k.metadata),
            ]),
          ),
        );
      }
      if (!list_complete && cursor) {
        out.line(out.paint.dim(`more keys follow: workerbase kv list --cursor ${cursor}`));
      }
    },
  },
  {
    name: "kv get",
    usage: "KEY [--json]",
    summary: "print a value (with --json: key, text value and metadata)",
    args: [1, 1],
    flags: jsonFlag,
    async run(args) {
      const key = args.positionals[0];
      const api = platform(args);
      const res = await api.send("GET", `/kv/values/${seg(key)}`);
      if (!res.ok) throw await api.failure(res, `key "${key}" not found`);
      const value = Buffer.from(await res.arrayBuffer());
      const meta = res.headers.get("x-kv-metadata");
      if (args.flags.json) {
        let metadata: unknown = null;
        try {
          metadata = meta ? JSON.parse(meta) : null;
        } catch {
          metadata = meta;
        }
        return out.json({ key, value: value.toString("utf8"), metadata });
      }
      process.stdout.write(value);
      if (process.stdout.isTTY && value.length > 0 && value[value.length - 1] !== 0x0a) {
        process.stdout.write("\n");
      }
    },
  },
  {
    name: "kv put",
    usage: "KEY [VALUE] [--file path] [--ttl s]",
    summary: "store a value (from VALUE, --file, or stdin)",
    args: [1, 2],
    flags: {
      file: { type: "string", value: "path", help: "take the value from a file" },
      ttl: { type: "string", value: "s", help: "expire after s seconds (at least 60)" },
    },
    async run(args) {
      const [key, given] = args.positionals;
      const file = stringFlag(args, "file");
      if (given !== undefined && file) throw new UsageError("give VALUE or --file, not both");
      const ttl = intFlag(args, "ttl", 60, 2 ** 31);
      const value =
        given !== undefined ? Buffer.from(given) : file ? readUserBytes(file) : await readStdin();
      const api = platform(args);
      const res = await api.send("PUT", `/kv/values/${seg(key)}`, {
        body: value,
        headers: { "content-type": "application/octet-stream" },
        query: { expiration_ttl: ttl },
      });
      if (!res.ok) throw await api.failure(res);
      out.line(`stored ${key} (${value.length} bytes${ttl ? `, expires in ${ttl} s` : ""})`);
    },
  },
  {
    name: "kv delete",
    usage: "KEY",
    summary: "delete a key",
    args: [1, 1],
    flags: {},
    async run(args) {
      const key = args.positionals[0];
      await platform(args).call("DELETE", `/kv/values/${seg(key)}`);
      out.line(`deleted ${key}`);
    },
  },
];
