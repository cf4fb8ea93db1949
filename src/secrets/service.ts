import { z } from "zod";
import { AppError } from "../http/errors.js";
import { now, type Store } from "../store/db.js";
import type { FunctionService } from "../functions/service.js";
import type { SecretBox } from "./crypto.js";
import { PROJECT_SCOPE, secretStore } from "./store.js";

export const maxSecretBytes = 64 * 1024;
export const maxSecretsPerFunctionBytes = 512 * 1024;
const sealOverhead = 28;

export const SecretInput = z.strictObject({
  name: z
    .string()
    .max(128)
    .regex(
      /^[A-Z][A-Z0-9_]*$/,
      "must be uppercase letters, digits and underscores, starting with a letter",
    )
    .refine((n) => n !== "KV" && n !== "DB", "KV and DB are reserved for the bindings"),
  value: z.unknown().refine((v) => v !== undefined, "is required"),
  type: z.enum(["text", "json"]).optional(),
});
export type SecretInput = z.infer<typeof SecretInput>;

function context(projectId: string, functionId: string, name: string): string {
  return `${projectId}/${functionId || "project"}/${name}`;
}

/** Function and project secrets: sealed at rest, never returned, applied on the next invocation. */
export class SecretService {
  constructor(
    private db: Store,
    private box: SecretBox,
    private functions: FunctionService,
  ) {}

  /** A function's own secrets and the inherited project ones (names and types only). */
  async listForFunction(projectId: string, idOrSlug: string) {
    const fn = await this.functions.get(projectId, idOrSlug);
    const rows = await secretStore.forFunction(this.db, projectId, fn.id);
    const own = new Set(rows.filter((r) => r.function_id === fn.id).map((r) => r.name));
    return rows
      .filter((r) => r.function_id === fn.id || !own.has(r.name))
      .map((r) => ({
        name: r.name,
        type: r.function_id === fn.id ? r.type : ("inherited" as const),
        created_at: r.created_at,
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async listForProject(projectId: string) {
    const rows = await secretStore.list(this.db, projectId, PROJECT_SCOPE);
    return rows.map((r) => ({ name: r.name, type: r.type, created_at: r.created_at }));
  }

  /** Sets a function's secret (`functionRef`) or a project's (`null`); the same name replaces. */
  async set(projectId: string, functionRef: string | null, input: SecretInput) {
    const functionId = functionRef
      ? (await this.functions.get(projectId, functionRef)).id
      : PROJECT_SCOPE;
    let type: "text" | "json";
    let plaintext: string;
    if (input.type === "json" && typeof input.value === "string") {
      try {
        JSON.parse(input.value);
      } catch {
        throw new AppError("INVALID_INPUT", "Invalid value: type json needs a JSON text", [
          { field: "value", message: "is not valid JSON" },
        ]);
      }
      [type, plaintext] = ["json", input.value];
    } else if (typeof input.value === "string" && input.type !== "json") {
      [type, plaintext] = ["text", input.value];
    } else {
      [type, plaintext] = ["json", JSON.stringify(input.value)];
    }
    const size = Buffer.byteLength(plaintext);
    if (size > maxSecretBytes) {
      throw new AppError(
        "TOO_LARGE",
        `Invalid value: a secret may be at most ${maxSecretBytes} bytes (this one is ${size})`,
        [{ field: "value", message: "too large" }],
      );
    }
    await this.checkTotals(projectId, functionId, input.name, size);
    await this.db.transaction().execute(async (tx) => {
      await secretStore.upsert(tx, {
        project_id: projectId,
        function_id: functionId,
        name: input.name,
        type,
        ciphertext: this.box.seal(plaintext, context(projectId, functionId, input.name)),
        created_at: now(),
      });
      await this.bump(tx, projectId, functionId);
    });
    await this.invalidate(projectId, functionId);
    return { name: input.name, type, created_at: now() };
  }

  async remove(projectId: string, functionRef: string | null, name: string): Promise<void> {
    const functionId = functionRef
      ? (await this.functions.get(projectId, functionRef)).id
      : PROJECT_SCOPE;
    const deleted = await this.db.transaction().execute(async (tx) => {
      const result = await secretStore.delete(tx, projectId, functionId, name);
      if (result.numDeletedRows > 0n) await this.bump(tx, projectId, functionId);
      return result.numDeletedRows > 0n;
    });
    if (!deleted) throw new AppError("NOT_FOUND", `Secret ${name} not found`);
    await this.invalidate(projectId, functionId);
  }

  /** The env values a function's isolate receives: project secrets overlaid by its own. */
  async envFor(projectId: string, functionId: string): Promise<Record<string, string>> {
    const rows = await secretStore.forFunction(this.db, projectId, functionId);
    rows.sort((a, b) =>
      a.function_id === b.function_id ? 0 : a.function_id === PROJECT_SCOPE ? -1 : 1,
    );
    const env: Record<string, string> = {};
    for (const row of rows)
      env[row.name] = this.box.open(row.ciphertext, context(projectId, row.function_id, row.name));
    return env;
  }

  /** Keeps every function's secrets (own plus inherited) within the per-function total. */
  private async checkTotals(projectId: string, functionId: string, name: string, size: number) {
    const rows = await secretStore.ofProject(this.db, projectId);
    const sizes = new Map<string, Map<string, number>>();
    for (const r of rows) {
      if (!sizes.has(r.function_id)) sizes.set(r.function_id, new Map());
      sizes.get(r.function_id)!.set(r.name, r.ciphertext.length - sealOverhead);
    }
    if (!sizes.has(functionId)) sizes.set(functionId, new Map());
    sizes.get(functionId)!.set(name, size);
    const projectLevel = sizes.get(PROJECT_SCOPE) ?? new Map<string, number>();
    const affected =
      functionId === PROJECT_SCOPE
        ? [...sizes.keys()].filter((k) => k !== PROJECT_SCOPE)
        : [functionId];
    if (functionId === PROJECT_SCOPE && affected.length === 0) affected.push("(any function)");
    for (const fn of affected) {
      const merged = new Map(projectLevel);
      for (const [n, s] of sizes.get(fn) ?? []) merged.set(n, s);
      const total = [...merged.values()].reduce((a, b) => a + b, 0);
      if (total > maxSecretsPerFunctionBytes) {
        throw new AppError(
          "TOO_LARGE",
          `Invalid value: a function's secrets, own and inherited, may total at most ${maxSecretsPerFunctionBytes} bytes`,
          [{ field: "value", message: "total too large" }],
        );
      }
    }
  }

  private async bump(tx: Store, projectId: string, functionId: string) {
    if (functionId === PROJECT_SCOPE) await secretStore.bumpProject(tx, projectId);
    else await secretStore.bumpFunction(tx, functionId);
  }

  private invalidate(projectId: string, functionId: string): Promise<void> {
    if (functionId === PROJECT_SCOPE) return this.functions.invalidateProject(projectId);
    return this.functions.invalidate(functionId);
  }
}
