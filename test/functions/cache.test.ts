// The invoke path's cache of functions against writes that commit while a fill is reading.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { KyselyPlugin, PluginTransformResultArgs, QueryResult, UnknownRow } from "kysely";
import { openStore, type Store } from "../../src/store/db.js";
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

let dir: string;
let writer: Store;
let reader: Store;
const gate = new Gate();
let service: FunctionService;
const projectId = crypto.randomUUID();

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-fncache-"));
  writer = await openStore(dir);
  reader = await openStore(dir);
  await writer
    .insertInto("projects")
    .values({ id: projectId, name: "p", created_at: "x" })
    .execute();
  const options = {
    publicUrl: "http://127.0.0.1",
    strikesToHold: 3,
    strikeWindowMs: 60_000,
    holdMs: 60_000,
    deployProbeTimeoutMs: 1000,
    maxFunctionsPerProject: 100,
    log: () => {},
  };
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
