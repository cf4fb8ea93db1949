import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { AppError } from "../http/errors.js";
import { isUniqueViolation, now, type Store } from "../store/db.js";
import { projectStore } from "./store.js";
import type { ChangeFeed } from "../store/changes.js";

export interface KeyIdentity {
  projectId: string;
  keyId: string;
}

/** The SHA-256 of an API key, the only form in which keys are stored. */
export function hashKey(key: string): string {
  return crypto.createHash("sha256").update(key).digest("hex");
}

function newKey(): string {
  return "wb_" + crypto.randomBytes(24).toString("base64url");
}

/**
 * Projects and their API keys; keys are resolved from an in-memory cache of hashes, which
 * every key created or revoked on any host clears (through the change feed).
 */
export class ProjectService {
  private keyCache = new Map<string, KeyIdentity | null>();
  /** Bumped by every change to keys: a fill that read before it does not store what it read. */
  private generation = 0;

  constructor(
    private db: Store,
    private changes?: ChangeFeed,
  ) {
    changes?.on((change) => {
      if (change.topic === "key") this.forgetKey(change.key);
    });
    changes?.onReset(() => {
      this.generation++;
      this.keyCache.clear();
    });
  }

  /** The project a key belongs to, or null; unknown keys are cached too, briefly bounded. */
  async authenticate(key: string | undefined | null): Promise<KeyIdentity | null> {
    if (!key || key.length > 256) return null;
    const hash = hashKey(key);
    const cached = this.keyCache.get(hash);
    if (cached !== undefined) return cached;
    const generation = this.generation;
    const row = await projectStore.keyByHash(this.db, hash);
    const identity = row ? { projectId: row.project_id, keyId: row.id } : null;
    if (generation === this.generation && (identity || this.keyCache.size < 10_000))
      this.keyCache.set(hash, identity);
    return identity;
  }

  private forgetKey(hash: string): void {
    this.generation++;
    this.keyCache.delete(hash);
  }

  /** Drops `hash` here and on every other host. */
  private async keyChanged(hash: string): Promise<void> {
    this.forgetKey(hash);
    await this.changes?.publish([{ topic: "key", key: hash }]);
  }

  async createProject(
    name: string,
  ): Promise<{ id: string; name: string; api_key: string; api_key_id: string }> {
    const id = crypto.randomUUID();
    await projectStore.insertProject(this.db, { id, name, created_at: now() });
    const key = await this.createKey(id);
    return { id, name, api_key: key.api_key, api_key_id: key.id };
  }

  async listProjects() {
    return (await projectStore.listProjects(this.db)).map(({ id, name, created_at }) => ({
      id,
      name,
      created_at,
    }));
  }

  async requireProject(id: string) {
    const project = await projectStore.projectById(this.db, id);
    if (!project) throw new AppError("NOT_FOUND", "Project not found");
    return project;
  }

  /** Creates a key for a project; the plain key exists only in the return value. */
  async createKey(
    projectId: string,
    key = newKey(),
  ): Promise<{ id: string; api_key: string; prefix: string; created_at: string }> {
    const row = {
      id: crypto.randomUUID(),
      project_id: projectId,
      key_hash: hashKey(key),
      prefix: key.slice(0, 8),
      created_at: now(),
    };
    await projectStore.insertKey(this.db, row);
    await this.keyChanged(row.key_hash);
    return { id: row.id, api_key: key, prefix: row.prefix, created_at: row.created_at };
  }

  async listKeys(projectId: string) {
    await this.requireProject(projectId);
    return projectStore.keysOfProject(this.db, projectId);
  }

  async deleteKey(id: string): Promise<void> {
    const deleted = await projectStore.deleteKey(this.db, id);
    if (!deleted) throw new AppError("NOT_FOUND", "API key not found");
    await this.keyChanged(deleted.key_hash);
  }

  /**
   * Makes sure the `default` project exists with a usable key: `WORKERBASE_API_KEY` if set
   * (idempotent), else a generated key printed once and saved 0600 for the local CLI.
   */
  async bootstrap(
    dataDir: string,
    configuredKey: string | undefined,
    print: (line: string) => void,
  ) {
    let project = await projectStore.projectByName(this.db, "default");
    let created = false;
    if (!project) {
      // Hosts of a cluster starting together on an empty store agree on one default project:
      // the first id written to cluster_meta wins, and every host creates that one.
      const candidate = crypto.randomUUID();
      await this.db
        .insertInto("cluster_meta")
        .values({ name: "default_project", value: candidate })
        .onConflict((oc) => oc.column("name").doNothing())
        .execute();
      const { value: id } = await this.db
        .selectFrom("cluster_meta")
        .select("value")
        .where("name", "=", "default_project")
        .executeTakeFirstOrThrow();
      await this.db
        .insertInto("projects")
        .values({ id, name: "default", created_at: now() })
        .onConflict((oc) => oc.column("id").doNothing())
        .execute();
      project = await projectStore.projectById(this.db, id);
      created = id === candidate;
    }
    const projectId = project!.id;
    if (configuredKey) {
      let existing = await projectStore.keyByHash(this.db, hashKey(configuredKey));
      if (!existing) {
        try {
          await this.createKey(projectId, configuredKey);
        } catch (err) {
          if (!isUniqueViolation(err)) throw err; // another host stored it first
        }
        existing = await projectStore.keyByHash(this.db, hashKey(configuredKey));
      }
      if (existing && existing.project_id !== projectId) {
        throw new Error("WORKERBASE_API_KEY already belongs to another project");
      }
    } else if (created) {
      const key = await this.createKey(projectId);
      const file = credentialsFile(dataDir);
      fs.writeFileSync(file, JSON.stringify({ api_key: key.api_key }) + "\n", { mode: 0o600 });
      print(`Created project "default". Its API key (shown once; also saved to ${file}):`);
      print(`  ${key.api_key}`);
    }
    return projectId;
  }
}

/** Where the generated first key is kept for the local CLI. */
export function credentialsFile(dataDir: string): string {
  return path.join(dataDir, "credentials.json");
}
