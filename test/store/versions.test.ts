// Version numbers are handed out by the store's own transaction: two hosts (two stores on one
// database) committing deploys of one function at once still get distinct, gapless numbers.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { openStore } from "../../src/store/db.js";
import { functionStore } from "../../src/functions/store.js";
import { createTestDatabase, dropTestDatabases } from "../helpers/postgres.js";

after(dropTestDatabases);

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wb-versions-"));
const at = new Date().toISOString();

const engines = [
  {
    kind: "sqlite",
    // One store: better-sqlite3 is synchronous, so a second connection in this same process
    // would block the event loop waiting for the first one's lock (hosts sharing a SQLite
    // file are separate processes, `serve --workers`, whose writes SQLite serializes).
    open: async () => {
      const db = await openStore(tmp());
      return [db, db];
    },
  },
  {
    kind: "postgres",
    open: async () => {
      const { url } = await createTestDatabase();
      const first = await openStore(tmp(), { databaseUrl: url });
      return [first, await openStore(tmp(), { databaseUrl: url, migrate: false })];
    },
  },
];

for (const engine of engines) {
  describe(`version numbers on ${engine.kind}`, () => {
    it("40 deploys committed at once get 1..40, once each (through two stores on PostgreSQL)", async () => {
      const [one, two] = await engine.open();
      try {
        await one.insertInto("projects").values({ id: "p", name: "p", created_at: at }).execute();
        await functionStore.insert(one, {
          id: "fn",
          project_id: "p",
          name: "f",
          slug: "f",
          description: null,
          code: "",
          status: "deploying",
          version: 0,
          last_deployed_at: null,
          deploy_error: null,
          function_type: "cloudflare_worker",
          runtime_config: "{}",
          public_endpoint: 0,
          invoke_response_mode: "passthrough",
          tool: null,
          live_deployment_id: null,
          live_version: null,
          created_at: at,
          updated_at: at,
        });
        const ids = Array.from({ length: 40 }, (_, i) => `dep-${i}`);
        for (const id of ids)
          await functionStore.insertDeployment(one, {
            id,
            function_id: "fn",
            version: null,
            code: "",
            module: "",
            runtime_config: "{}",
            invoke_response_mode: "passthrough",
            message: null,
            created_at: at,
          });
        const numbers = await Promise.all(
          ids.map((id, i) => functionStore.commitVersion(i % 2 ? one : two, "fn", id, 1000)),
        );
        assert.deepEqual(
          [...numbers].sort((x, y) => x - y),
          Array.from({ length: 40 }, (_, i) => i + 1),
        );
        const rows = await one
          .selectFrom("deployments")
          .select(["id", "version"])
          .where("function_id", "=", "fn")
          .execute();
        assert.equal(new Set(rows.map((r) => r.version)).size, 40);
        const fn = await functionStore.byId(one, "fn");
        assert.equal(fn?.version, 40);
        assert.equal(fn?.live_version, 40);
        // The live pointer and its number agree.
        const live = rows.find((r) => r.id === fn?.live_deployment_id);
        assert.equal(live?.version, 40);
      } finally {
        await one.destroy();
        if (two !== one) await two.destroy();
      }
    });
  });
}
