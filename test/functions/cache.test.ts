// The invoke path's caches (functions, keys, holds) against writes that commit while a fill is
// reading, and against changes made by another host, on both engines.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { KyselyPlugin, PluginTransformResultArgs, QueryResult, UnknownRow } from "kysely";
import { openStore, type Store, type StoreKind } from "../../src/store/db.js";
import { ChangeFeed } from "../../src/store/changes.js";
import { ManualClock } from "../../src/store/clock.js";
import { ProjectService } from "../../src/projects/service.js";
import { createTestDatabase, dropTestDatabases } from "../helpers/postgres.js";
import { FunctionService } from "../../src/functions/service.js";
import { functionStore } from "../../src/functions/store.js";

/**
 * Holds the result of a query after `arm(skip)` (the first, or the one after `skip` others)
 * until `release()`: the query has read the store, and the code awaiting it has not seen the
 * answer yet. The held query keeps its
 * connection, so the test writes through a second connection to the same file.
 */
class Gate implements KyselyPlugin {
  private armed = false;
  private skip = 0;
  private opened: (() => void) | null = null;
  private signal: (() => void) | null = null;
  /** Resolves once a query's result is being held. */
  reached!: Promise<void>;

  arm(skip = 0): void {
    this.armed = true;
    this.skip = skip;
    this.reached = new Promise((resolve) => (this.signal = resolve));
  }

  release(): void {
    this.opened?.();
  }

  transformQuery(args: Parameters<KyselyPlugin["transformQuery"]>[0]) {
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    if (!this.armed || this.skip-- > 0) return args.result;
    this.armed = false;
    await new Promise<void>((resolve) => {
      this.opened = resolve;
      this.signal!();
    });
    return args.result;
  }
}

after(dropTestDatabases);

const options = {
  publicUrl: "http://127.0.0.1",
  strikesToHold: 3,
  strikeWindowMs: 60_000,
  holdMs: 60_000,
  deployProbeTimeoutMs: 1000,
  maxFunctionsPerProject: 100,
  log: () => {},
};

for (const kind of ["sqlite", "postgres"] as StoreKind[])
  describe(`on ${kind}`, () => {
    let dir: string;
    let writer: Store;
    let reader: Store;
    const gate = new Gate();
    let service: FunctionService;
    const projectId = crypto.randomUUID();
    let open: () => Promise<Store>;

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-fncache-"));
      if (kind === "postgres") {
        const { url } = await createTestDatabase();
        open = () => openStore(dir, { databaseUrl: url });
      } else open = () => openStore(dir);
      writer = await open();
      reader = await open();
      await writer
        .insertInto("projects")
        .values({ id: projectId, name: "p", created_at: "x" })
        .execute();
      // Lookups only: the runtime pool (deploy probes) is never reached.
      service = new FunctionService(reader.withPlugin(gate), undefined as never, options);
    });
    after(async () => {
      await reader.destroy();
      await writer.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    async function deployment(functionId: string): Promise<string> {
      const id = crypto.randomUUID();
      await functionStore.insertDeployment(writer, {
        id,
        function_id: functionId,
        version: null,
        code: "x",
        module: "x",
        runtime_config: "{}",
        created_at: "x",
      });
      return id;
    }

    /** A deployed function with its first version live. */
    async function deployed(slug: string): Promise<{ id: string; first: string }> {
      const id = crypto.randomUUID();
      await functionStore.insert(writer, {
        id,
        project_id: projectId,
        name: slug,
        slug,
        description: null,
        code: "x",
        status: "deployed",
        version: 1,
        last_deployed_at: "x",
        deploy_error: null,
        function_type: "cloudflare_worker",
        runtime_config: "{}",
        public_endpoint: 0,
        invoke_response_mode: "passthrough",
        tool: null,
        live_deployment_id: null,
        created_at: "x",
        updated_at: "x",
      });
      const first = await deployment(id);
      await functionStore.update(writer, id, { live_deployment_id: first });
      return { id, first };
    }

    /**
     * Starts a lookup that misses the cache, lets `write` commit (and invalidate) after the
     * lookup has made its `skip + 1`th store read but before it fills the cache, then finishes it.
     */
    async function straddle(idOrSlug: string, write: () => Promise<void>, skip = 0) {
      gate.arm(skip);
      const lookup = service.resolveForInvoke(idOrSlug, projectId);
      await gate.reached;
      await write();
      gate.release();
      return lookup;
    }

    describe("the function cache", () => {
      it("a fill that read the store before a deploy committed does not keep the old version live", async () => {
        const { id, first } = await deployed("straddled");
        const second = await deployment(id);
        const during = await straddle(id, async () => {
          await functionStore.update(writer, id, { version: 2, live_deployment_id: second });
          service.invalidate(id);
        });
        // The lookup began before the deploy, so it may answer the old version itself...
        assert.equal(during?.deploymentId, first);
        // ...but later lookups see the new one.
        assert.equal((await service.resolveForInvoke(id, projectId))?.deploymentId, second);
        // And the cache fills again once nothing interferes.
        assert.equal((await service.resolveForInvoke(id, projectId))?.deploymentId, second);
      });

      it("a fill by slug that straddles a rename does not keep the old slug", async () => {
        const { id } = await deployed("old-name");
        await straddle("old-name", async () => {
          await functionStore.update(writer, id, { slug: "new-name" });
          service.invalidate(id);
        });
        assert.equal(await service.resolveForInvoke("old-name", projectId), null);
        assert.equal((await service.resolveForInvoke("new-name", projectId))?.id, id);
      });

      it("a fill that straddles a project secret change does not keep the old worker id", async () => {
        const { id } = await deployed("secretive");
        const during = await straddle(
          id,
          async () => {
            await writer
              .updateTable("projects")
              .set((eb) => ({ secrets_version: eb("secrets_version", "+", 1) }))
              .where("id", "=", projectId)
              .execute();
            service.invalidateProject(projectId);
            // Its reads: the function, its deployment, then the project's secrets version.
          },
          2,
        );
        assert.match(during!.workerId!, /:0:0$/);
        assert.match((await service.resolveForInvoke(id, projectId))!.workerId!, /:1:0$/);
      });
    });

    describe("changes made by another host", () => {
      const clock = new ManualClock();
      const feed = (db: Store, hostId: string) =>
        new ChangeFeed(db, { hostId, pollMs: 60_000, clock, log: () => {} });

      it("a deploy on one host reaches another host's cache through the change log", async () => {
        const feedA = feed(writer, "host-a");
        const feedB = feed(reader, "host-b");
        await feedA.start();
        await feedB.start();
        const hostA = new FunctionService(writer, undefined as never, {
          ...options,
          changes: feedA,
        });
        const hostB = new FunctionService(reader, undefined as never, {
          ...options,
          changes: feedB,
        });
        const { id, first } = await deployed("remote");
        assert.equal((await hostB.resolveForInvoke(id, projectId))?.deploymentId, first);
        const second = await deployment(id);
        await functionStore.update(writer, id, { version: 2, live_deployment_id: second });
        await hostA.invalidate(id);
        // Until host B reads the log, its cache answers the old version...
        assert.equal((await hostB.resolveForInvoke(id, projectId))?.deploymentId, first);
        await feedB.poll();
        // ...and from then on the new one.
        assert.equal((await hostB.resolveForInvoke(id, projectId))?.deploymentId, second);
        await feedA.stop();
        await feedB.stop();
      });

      it("a key revoked on one host is refused by another once it reads the log", async () => {
        const feedA = feed(writer, "host-a");
        const feedB = feed(reader, "host-b");
        await feedA.start();
        await feedB.start();
        const hostA = new ProjectService(writer, feedA);
        const hostB = new ProjectService(reader, feedB);
        const key = await hostA.createKey(projectId);
        assert.equal((await hostB.authenticate(key.api_key))?.keyId, key.id);
        await hostA.deleteKey(key.id);
        await feedB.poll();
        assert.equal(await hostB.authenticate(key.api_key), null);
        await feedA.stop();
        await feedB.stop();
      });

      it("a function held back on one host is held on another and after a restart", async () => {
        const feedA = feed(writer, "host-a");
        const feedB = feed(reader, "host-b");
        await feedA.start();
        await feedB.start();
        const hostA = new FunctionService(writer, undefined as never, {
          ...options,
          changes: feedA,
          clock,
        });
        const hostB = new FunctionService(reader, undefined as never, {
          ...options,
          changes: feedB,
          clock,
        });
        await hostB.loadHolds();
        const { id } = await deployed("striking");
        await hostA.strike([id], "hung");
        await hostA.strike([id], "hung");
        assert.equal(hostA.heldUntil(id), null);
        await hostA.strike([id], "hung");
        assert.notEqual(hostA.heldUntil(id), null);
        assert.equal(hostB.heldUntil(id), null);
        await feedB.poll();
        // The change names the hold; host B reads it from the store.
        assert.equal(hostB.heldUntil(id), hostA.heldUntil(id));
        const restarted = new FunctionService(reader, undefined as never, { ...options, clock });
        await restarted.loadHolds();
        assert.equal(restarted.heldUntil(id), hostA.heldUntil(id));
        clock.advance(options.holdMs + 1);
        assert.equal(restarted.heldUntil(id), null);
        await feedA.stop();
        await feedB.stop();
      });
    });
  });
