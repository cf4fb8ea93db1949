import type { Generated } from "kysely";

/** Row types of the host's own database. JSON columns hold text; booleans are 0/1. */
export interface ProjectsTable {
  id: string;
  name: string;
  secrets_version: Generated<number>;
  created_at: string;
}

export interface ApiKeysTable {
  id: string;
  project_id: string;
  key_hash: string;
  prefix: string;
  created_at: string;
}

export interface FunctionsTable {
  id: string;
  project_id: string;
  name: string;
  slug: string;
  description: string | null;
  code: string;
  status: "draft" | "deploying" | "deployed" | "error";
  version: number;
  last_deployed_at: string | null;
  deploy_error: string | null;
  function_type: string;
  runtime_config: string;
  public_endpoint: number;
  invoke_response_mode: "passthrough" | "wrapped";
  tool: string | null;
  live_deployment_id: string | null;
  secrets_version: Generated<number>;
  created_at: string;
  updated_at: string;
}

export interface DeploymentsTable {
  id: string;
  function_id: string;
  version: number | null;
  /** The code as the user wrote it. */
  code: string;
  /** The ES module actually loaded: the code plus the export Workerbase adds. */
  module: string;
  runtime_config: string;
  created_at: string;
}

export interface InvocationsTable {
  id: string;
  function_id: string;
  project_id: string;
  status: "success" | "failed";
  status_code: number;
  duration_ms: number;
  request_headers: string;
  request_body: string | null;
  response_body: string | null;
  error_message: string | null;
  logs: string;
  trigger: string;
  created_at: string;
}

export interface SecretsTable {
  project_id: string;
  /** Empty string for a project-level secret (SQLite unique keys ignore NULLs). */
  function_id: string;
  name: string;
  type: "text" | "json";
  ciphertext: Buffer;
  created_at: string;
}

export interface KvTable {
  project_id: string;
  key: Buffer;
  value: Buffer;
  metadata: string | null;
  /** Seconds since the epoch, or null for no expiry. */
  expiration: number | null;
}

export interface Database {
  projects: ProjectsTable;
  api_keys: ApiKeysTable;
  functions: FunctionsTable;
  deployments: DeploymentsTable;
  invocations: InvocationsTable;
  secrets: SecretsTable;
  kv: KvTable;
}
