import crypto from "node:crypto";
import { StoreStartError, type Store } from "../store/db.js";
import type { SecretBox } from "./crypto.js";

const name = "master_key_sentinel";
const sentinelContext = "workerbase/master-key-sentinel";

const mismatch = () =>
  new StoreStartError(
    "WORKERBASE_MASTER_KEY does not match the key this cluster's secrets are sealed with: " +
      "start this host with the same WORKERBASE_MASTER_KEY as the others",
  );

/**
 * Refuses to start a host whose master key cannot open the cluster's secrets: it would store
 * secrets no other host can read, and read none of theirs. The store keeps a random value
 * sealed with the first host's key; every host must open it. A store from before the sentinel
 * is checked against one of its secrets instead, then gets its sentinel.
 */
export async function checkMasterKey(db: Store, box: SecretBox): Promise<void> {
  let row = await db
    .selectFrom("cluster_meta")
    .select("value")
    .where("name", "=", name)
    .executeTakeFirst();
  if (!row) {
    const secret = await db
      .selectFrom("secrets")
      .select(["project_id", "function_id", "name", "ciphertext"])
      .limit(1)
      .executeTakeFirst();
    if (secret) {
      try {
        box.open(
          secret.ciphertext,
          `${secret.project_id}/${secret.function_id || "project"}/${secret.name}`,
        );
      } catch {
        throw mismatch();
      }
    }
    await db
      .insertInto("cluster_meta")
      .values({
        name,
        value: box.seal(crypto.randomBytes(16).toString("hex"), sentinelContext).toString("base64"),
      })
      .onConflict((oc) => oc.column("name").doNothing())
      .execute();
    row = await db
      .selectFrom("cluster_meta")
      .select("value")
      .where("name", "=", name)
      .executeTakeFirstOrThrow();
  }
  try {
    box.open(Buffer.from(row.value, "base64"), sentinelContext);
  } catch {
    throw mismatch();
  }
}
