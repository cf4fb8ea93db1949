import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

/**
 * The master key: WORKERBASE_MASTER_KEY (32 bytes, base64 or hex) or, when unset, a key
 * generated on first start and kept 0600 in the data dir, outside the database file.
 */
export function loadMasterKey(dataDir: string, configured: string | undefined): Buffer {
  if (configured) {
    const value = configured.trim();
    const key = /^[0-9a-fA-F]{64}$/.test(value)
      ? Buffer.from(value, "hex")
      : Buffer.from(value, "base64");
    if (key.length !== 32)
      throw new Error("WORKERBASE_MASTER_KEY must be 32 bytes, base64 or hex encoded");
    return key;
  }
  const file = path.join(dataDir, "master.key");
  if (fs.existsSync(file)) {
    const key = Buffer.from(fs.readFileSync(file, "utf8").trim(), "base64");
    if (key.length !== 32) throw new Error(`${file} does not hold a 32-byte key`);
    return key;
  }
  const key = crypto.randomBytes(32);
  try {
    fs.writeFileSync(file, key.toString("base64") + "\n", { mode: 0o600, flag: "wx" });
  } catch (err) {
    // Another host of `serve --workers` made it first: use that one.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return loadMasterKey(dataDir, undefined);
    throw err;
  }
  return key;
}

/** AES-256-GCM with a fresh nonce per value; `context` (owner and name) is bound as associated data. */
export class SecretBox {
  constructor(private key: Buffer) {}

  seal(plaintext: string, context: string): Buffer {
    const nonce = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv("aes-256-gcm", this.key, nonce);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return Buffer.concat([nonce, cipher.getAuthTag(), body]);
  }

  open(sealed: Buffer, context: string): string {
    const decipher = crypto.createDecipheriv("aes-256-gcm", this.key, sealed.subarray(0, 12));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(sealed.subarray(12, 28));
    return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]).toString("utf8");
  }
}
