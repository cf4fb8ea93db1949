import { UsageError, stringFlag, type Flags, type ParsedArgs } from "./args.js";
import { jsonFlag, seg, type Command } from "./command.js";
import { admin } from "./http.js";
import { out, table, when } from "./output.js";

const adminFlag: Flags = {
  "admin-key": { type: "string", value: "KEY", help: "operator key (WORKERBASE_ADMIN_KEY)" },
};

function projectId(args: ParsedArgs): string {
  const id = stringFlag(args, "project");
  if (!id) throw new UsageError("--project <id> is required (see: workerbase projects list)");
  return id;
}

const projectNotFound = (id: string) => `project "${id}" not found (see: workerbase projects list)`;

export const projectCommands: Command[] = [
  {
    name: "projects create",
    usage: "<name> [--json]",
    summary: "create a project and its first API key (operator)",
    args: [1, 1],
    flags: { ...jsonFlag, ...adminFlag },
    async run(args) {
      const body = await admin(args).call<{
        data: { id: string; name: string; api_key: string; api_key_id: string };
      }>("POST", "/projects", { json: { project: { name: args.positionals[0] } } });
      if (args.flags.json) return out.json(body);
      out.line(`created project ${body.data.name} (${body.data.id})`);
      out.line(`its API key, shown only now:`);
      out.line(`  ${body.data.api_key}`);
    },
  },
  {
    name: "projects list",
    usage: "[--json]",
    summary: "every project (operator)",
    args: [0, 0],
    flags: { ...jsonFlag, ...adminFlag },
    async run(args) {
      const body = await admin(args).call<{
        data: { id: string; name: string; created_at: string }[];
      }>("GET", "/projects");
      if (args.flags.json) return out.json(body);
      out.line(
        table(
          ["ID", "NAME", "CREATED"],
          body.data.map((p) => [p.id, p.name, when(p.created_at)]),
        ),
      );
    },
  },
  {
    name: "keys create",
    usage: "--project <id> [--json]",
    summary: "a new API key for a project (operator)",
    args: [0, 0],
    flags: {
      ...jsonFlag,
      ...adminFlag,
      project: { type: "string", value: "id", help: "the project" },
    },
    async run(args) {
      const id = projectId(args);
      const body = await admin(args).call<{
        data: { id: string; api_key: string; prefix: string };
      }>("POST", `/projects/${seg(id)}/api_keys`, { notFound: projectNotFound(id) });
      if (args.flags.json) return out.json(body);
      out.line(`created key ${body.data.id} for project ${id}; the key, shown only now:`);
      out.line(`  ${body.data.api_key}`);
    },
  },
  {
    name: "keys list",
    usage: "--project <id> [--json]",
    summary: "a project's keys: ids and prefixes, never keys (operator)",
    args: [0, 0],
    flags: {
      ...jsonFlag,
      ...adminFlag,
      project: { type: "string", value: "id", help: "the project" },
    },
    async run(args) {
      const id = projectId(args);
      const body = await admin(args).call<{
        data: { id: string; prefix: string; created_at: string }[];
      }>("GET", `/projects/${seg(id)}/api_keys`, { notFound: projectNotFound(id) });
      if (args.flags.json) return out.json(body);
      out.line(
        table(
          ["ID", "PREFIX", "CREATED"],
          body.data.map((k) => [k.id, `${k.prefix}…`, when(k.created_at)]),
        ),
      );
    },
  },
  {
    name: "keys delete",
    usage: "<key-id>",
    summary: "revoke an API key (operator)",
    args: [1, 1],
    flags: adminFlag,
    async run(args) {
      const id = args.positionals[0];
      await admin(args).call("DELETE", `/api_keys/${seg(id)}`, {
        notFound: `API key "${id}" not found`,
      });
      out.line(`deleted key ${id}`);
    },
  },
];
