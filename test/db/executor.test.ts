import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { DbError, DbExecutor, timeoutMessage } from "../../src/db/executor.js";

let dir: string;
let executor: DbExecutor;
const lines: string[] = [];
const endless =
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-exec-"));
  executor = new DbExecutor({
    dir: path.join(dir, "databases"),
    processes: 2,
    timeoutMs: 5000,
    maxOpenPerProcess: 4,
    maxResultBytes: 1024 * 1024,
    log: (line) => lines.push(line),
  });
  // Wait until both children answer.
  await Promise.all(
    Array.from({ length: 8 }, () => executor.query(crypto.randomUUID(), [{ sql: "SELECT 1" }])),
  );
});
after(async () => {
  await executor.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const alive = (pid: number) => fs.existsSync(`/proc/${pid}`);

describe("the database executor", () => {
  it("keeps each project's database in its own file under the data dir", async () => {
    const project = crypto.randomUUID();
    await executor.query(project, [{ sql: "CREATE TABLE a (x)" }]);
    assert.ok(fs.existsSync(path.join(dir, "databases", `${project}.sqlite`)));
    await assert.rejects(executor.query("../../etc/passwd", [{ sql: "SELECT 1" }]), DbError);
  });

  it("serializes concurrent writes to one project: none fails, none is lost", async () => {
    const project = crypto.randomUUID();
    await executor.query(project, [{ sql: "CREATE TABLE w (n INTEGER)" }]);
    await Promise.all(
      Array.from({ length: 200 }, (_, n) =>
        executor.query(project, [{ sql: "INSERT INTO w VALUES (?)", params: [n] }]),
      ),
    );
    const [result] = await executor.query(project, [
      { sql: "SELECT count(*), count(DISTINCT n) FROM w" },
    ]);
    assert.deepEqual(result.rows, [[200, 200]]);
  });

  it("kills a child stuck past the time limit, keeps answering others, and replaces it", async () => {
    const stuckProject = crypto.randomUUID();
    await executor.query(stuckProject, [{ sql: "CREATE TABLE s (v)" }]);
    const pidsBefore = executor.pids();
    const started = Date.now();
    const stuck = executor.query(stuckProject, [{ sql: endless }], 1500);
    await new Promise((r) => setTimeout(r, 200));
    const queued = executor.query(stuckProject, [{ sql: "INSERT INTO s VALUES (1)" }]);
    // Other projects (some of them at home in the stuck child) still answer promptly.
    for (let i = 0; i < 10; i++) {
      const t0 = Date.now();
      await executor.query(crypto.randomUUID(), [{ sql: "SELECT 1" }]);
      assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
    }
    await assert.rejects(
      stuck,
      (err: DbError) => err.kind === "timeout" && err.message === timeoutMessage,
    );
    assert.ok(Date.now() - started < 3000);
    // What waited behind the stuck statement runs once its child is gone.
    const [inserted] = await queued;
    assert.equal(inserted.meta.changes, 1);
    const [count] = await executor.query(stuckProject, [{ sql: "SELECT count(*) FROM s" }]);
    assert.deepEqual(count.rows, [[1]]);
    const gone = pidsBefore.filter((pid) => !alive(pid));
    assert.equal(gone.length, 1);
    assert.equal(executor.stats.timeouts, 1);
    assert.ok(lines.some((l) => /ran a statement past 1500 ms; killing it/.test(l)));
  });

  it("replaces a child that dies on its own", async () => {
    const [victim] = executor.pids();
    const restarts = executor.stats.restarts;
    process.kill(victim, "SIGKILL");
    for (let i = 0; executor.pids().length < 2 || executor.pids().includes(victim); i++) {
      assert.ok(i < 100, "the child was not replaced within 10 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(executor.stats.restarts, restarts + 1);
    for (let i = 0; i < 4; i++) {
      const [r] = await executor.query(crypto.randomUUID(), [{ sql: "SELECT 2" }]);
      assert.deepEqual(r.rows, [[2]]);
    }
  });

  it("keeps only a few files open per child and reopens the others", async () => {
    const projects = Array.from({ length: 12 }, () => crypto.randomUUID());
    for (const p of projects) await executor.query(p, [{ sql: "CREATE TABLE o (v)" }]);
    for (const p of projects) await executor.query(p, [{ sql: "INSERT INTO o VALUES (1)" }]);
    for (const p of projects) {
      const [r] = await executor.query(p, [{ sql: "SELECT count(*) FROM o" }]);
      assert.deepEqual(r.rows, [[1]]);
    }
  });

  it("stops every child, and refuses work afterwards", async () => {
    const pids = executor.pids();
    assert.equal(pids.length, 2);
    const busy = executor.query(crypto.randomUUID(), [{ sql: endless }]).catch((e) => e);
    await new Promise((r) => setTimeout(r, 100));
    await executor.stop();
    for (const pid of pids) assert.equal(alive(pid), false);
    assert.ok((await busy) instanceof DbError);
    await assert.rejects(
      executor.query(crypto.randomUUID(), [{ sql: "SELECT 1" }]),
      (err: DbError) => err.kind === "stopped",
    );
  });
});
