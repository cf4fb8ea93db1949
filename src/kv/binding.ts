import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { headerSafeJson, KvError, type KvService } from "./service.js";

// What env.KV inside workerd may ask (src/runtime/worker/loaded/kv.js through the supervisor's
// KvBinding): the operation in the path; its arguments as JSON in `x-workerbase-args`, or as
// the body for list and bulk reads (whose size a header could not hold); a put's value as the
// body. Checked strictly: the arguments come from the user's isolate.
const Key = z.string();
const Int = z.number().int();
const argsOf = {
  get: z.strictObject({ key: Key, cacheTtl: Int.optional() }),
  getBulk: z.strictObject({
    keys: z.array(Key),
    type: z.string().optional(),
    withMetadata: z.boolean().optional(),
    cacheTtl: Int.optional(),
  }),
  put: z.strictObject({
    key: Key,
    expiration: Int.optional(),
    expirationTtl: Int.optional(),
    metadata: z.string().optional(),
  }),
  delete: z.strictObject({ key: Key }),
  list: z.strictObject({
    prefix: z.string().optional(),
    limit: Int.optional(),
    cursor: z.string().optional(),
  }),
};
type Op = keyof typeof argsOf;

/** How Cloudflare's binding names each operation in its error messages. */
const opNames: Record<Op, string> = {
  get: "GET",
  getBulk: "GET_BULK",
  put: "PUT",
  delete: "DELETE",
  list: "GET",
};

const argsInBody = new Set(["getBulk", "list"]);
/** Arguments in a body: 100 keys of 512 bytes, escaped, fit many times over. */
const maxArgsBytes = 1024 * 1024;

async function readArgs(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > maxArgsBytes) throw new Error("KV arguments too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length).toString("utf8");
}

/** What an operation answers: 200 with a body, 204, or 404 for an absent key. */
interface Reply {
  status: number;
  body?: Uint8Array | string;
  headers?: Record<string, string>;
}

const noContent: Reply = { status: 204 };
const json = (body: string): Reply => ({
  status: 200,
  body,
  headers: { "content-type": "application/json" },
});

type Handler<K extends Op> = (
  kv: KvService,
  projectId: string,
  args: z.infer<(typeof argsOf)[K]>,
  req: IncomingMessage,
) => Promise<Reply>;

/** Each operation, or a thrown KvError. */
const handlers: { [K in Op]: Handler<K> } = {
  get: async (kv, projectId, args) => {
    const found = await kv.get(projectId, args.key, args);
    if (!found) return { status: 404 };
    const headers: Record<string, string> = {};
    if (found.metadata !== null) headers["x-workerbase-metadata"] = headerSafeJson(found.metadata);
    return { status: 200, body: found.value, headers };
  },
  getBulk: async (kv, projectId, args) => {
    const map = await kv.getBulk(projectId, args.keys, args);
    // Serialized by hand to keep the map's order and any "__proto__" key as plain data.
    const entries = [...map].map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    return json(`{${entries.join(",")}}`);
  },
  put: async (kv, projectId, { key, ...options }, req) => {
    const length = req.headers["content-length"];
    await kv.put(projectId, key, req, options, length ? Number(length) : undefined);
    return noContent;
  },
  delete: async (kv, projectId, args) => {
    await kv.delete(projectId, args.key);
    return noContent;
  },
  list: async (kv, projectId, args) => json(JSON.stringify(await kv.list(projectId, args))),
};

function send(res: ServerResponse, { status, body, headers = {} }: Reply): void {
  if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
  res.writeHead(status, headers).end(body);
}

/**
 * The host side of env.KV. A broken rule answers 400 with the sentence the function's code
 * sees as an Error's message, worded as Cloudflare's binding words it.
 */
export function kvBindingHandler(kv: KvService) {
  return async (
    projectId: string,
    op: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> => {
    const fail = (status: number, message: string) => send(res, { status, body: message });
    if (!Object.hasOwn(argsOf, op)) return fail(404, "unknown KV operation");
    if (!projectId) return fail(400, "missing project");
    let args: unknown;
    try {
      const text = argsInBody.has(op)
        ? await readArgs(req)
        : ((req.headers["x-workerbase-args"] as string | undefined) ?? "{}");
      args = JSON.parse(text);
    } catch (err) {
      return fail(400, err instanceof SyntaxError ? "KV arguments are not valid JSON" : `${err}`);
    }
    const parsed = argsOf[op as Op].safeParse(args);
    if (!parsed.success) return fail(400, `KV ${opNames[op as Op]} failed: invalid arguments`);
    let reply: Reply;
    try {
      // The schema and the handler are picked by the same key, so the data fits the handler.
      const handler = handlers[op as Op] as Handler<Op>;
      reply = await handler(kv, projectId, parsed.data as never, req);
    } catch (err) {
      if (!(err instanceof KvError)) throw err;
      return fail(400, `KV ${opNames[op as Op]} failed: ${err.wireStatus} ${err.message}`);
    }
    send(res, reply);
  };
}
