// The functions under test, as the code a user deploys (a top-level `handler`). The same text
// runs on Workerbase and, wrapped by `asModule`, on bare workerd and Miniflare.

/** A 1 KB JSON document for the echo scenario. */
export const echoBody = JSON.stringify({
  id: "evt_0001",
  type: "order.created",
  items: Array.from({ length: 12 }, (_, i) => ({ sku: `SKU-${1000 + i}`, qty: i + 1 })),
  note: "x".repeat(400),
});

export const kvKey = "bench-key";
export const kvValue = "v".repeat(100);
export const d1Rows = 1000;
export const d1Id = 42;

export const handlers = {
  hello: `async function handler(request, env) {
  return new Response("Hello, world!");
}`,
  echo: `async function handler(request, env) {
  const body = await request.json();
  return Response.json(body);
}`,
  kv: `async function handler(request, env) {
  return new Response(await env.KV.get(${JSON.stringify(kvKey)}));
}`,
  d1: `async function handler(request, env) {
  const row = await env.DB.prepare("SELECT id, name, value FROM items WHERE id = ?").bind(${d1Id}).first();
  return Response.json(row);
}`,
};

export type Scenario = keyof typeof handlers;

/** Statements that create and fill the table of the D1 scenario (run once per database). */
export const d1Setup = [
  "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value INTEGER NOT NULL)",
  `INSERT OR IGNORE INTO items (id, name, value) SELECT n, 'item-' || n, n * 7 FROM (WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ${d1Rows}) SELECT n FROM c)`,
];

/** A function that runs the D1 setup statements (for platforms seeded through a function). */
export const d1SetupHandler = `async function handler(request, env) {
  for (const sql of ${JSON.stringify(d1Setup)}) await env.DB.prepare(sql).run();
  return Response.json(await env.DB.prepare("SELECT count(*) AS n FROM items").first());
}`;

/** What a correct answer of each scenario contains (checked once before measuring). */
export const expected: Record<Scenario, (body: string) => boolean> = {
  hello: (b) => b === "Hello, world!",
  echo: (b) => b === echoBody,
  kv: (b) => b === kvValue,
  d1: (b) => {
    try {
      return JSON.parse(b).name === `item-${d1Id}`;
    } catch {
      return false;
    }
  },
};

/** Binding operations timed inside a function: `n` operations per invocation. */
export const opHandlers = {
  "kv get": (n: number) => `async function handler(request, env) {
  for (let i = 0; i < ${n}; i++) await env.KV.get(${JSON.stringify(kvKey)});
  return new Response("ok");
}`,
  "kv put": (n: number) => `async function handler(request, env) {
  for (let i = 0; i < ${n}; i++) await env.KV.put("bench-put-" + i, "value-" + i);
  return new Response("ok");
}`,
  "d1 point query": (n: number) => `async function handler(request, env) {
  const stmt = env.DB.prepare("SELECT id, name, value FROM items WHERE id = ?");
  for (let i = 0; i < ${n}; i++) await stmt.bind((i % ${d1Rows}) + 1).first();
  return new Response("ok");
}`,
};

export type Op = keyof typeof opHandlers;

/** Code of the n-th function of the cold-start and memory scenarios (each one distinct). */
export function numberedHandler(n: number): string {
  return `async function handler(request, env) {
  return Response.json({ n: ${n} });
}`;
}

/** The user's code as a module workerd can serve directly: the platform's wrapping, minimal. */
export function asModule(code: string): string {
  return `${code}\nexport default { fetch: (request, env) => handler(request, env) };\n`;
}
