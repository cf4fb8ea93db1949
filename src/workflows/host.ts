import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../host/config.js";
import type { FunctionService } from "../functions/service.js";
import type { Invoker } from "../functions/invoke.js";
import type { Clock } from "../store/clock.js";
import type { Store } from "../store/db.js";
import type { ChangeFeed } from "../store/changes.js";
import { WorkflowEngine } from "./engine.js";
import { workflowRoutes } from "./routes.js";
import { WorkflowService } from "./service.js";
import { StepRunner } from "./steps.js";

export interface WorkflowDeps {
  db: Store;
  /** This host, as the owner of the executions it runs. */
  hostId: string;
  /** The time of leases and wait timeouts. */
  clock: Clock;
  config: Config;
  functions: FunctionService;
  invoker: Invoker;
  /** How workflow changes (their cron triggers) reach the other hosts' schedulers. */
  changes?: ChangeFeed;
  log: (line: string) => void;
}

/**
 * A stable id for this host, kept in its data dir; the hosts of `serve --workers` share one
 * data dir, so each adds its number.
 */
export function hostIdFor(dataDir: string, worker?: number): string {
  const file = path.join(dataDir, "host-id");
  let id: string;
  try {
    id = fs.readFileSync(file, "utf8").trim();
  } catch {
    id = crypto.randomUUID();
    try {
      fs.writeFileSync(file, id, { mode: 0o600, flag: "wx" });
    } catch {
      id = fs.readFileSync(file, "utf8").trim(); // another worker wrote it first
    }
  }
  return worker === undefined ? id : `${id}-${worker}`;
}

/** The workflows capability as the host wires it: service, routes, and the engine's lifecycle. */
export function createWorkflows({
  db,
  hostId,
  clock,
  config,
  functions,
  invoker,
  changes,
  log,
}: WorkflowDeps) {
  const steps = new StepRunner({
    clock,
    functions,
    invoker,
    publicUrl: config.publicUrl,
    allowPrivateNetwork: config.allowPrivateNetwork,
    webhookTimeoutMs: config.workflowWebhookTimeoutMs,
    log,
  });
  const engine = new WorkflowEngine(db, steps, {
    hostId,
    clock,
    leaseMs: config.workflowLeaseMs,
    sweepMs: config.workflowSweepMs,
    maxVarsBytes: config.workflowMaxVarsBytes,
    log,
  });
  const service = new WorkflowService(db, functions, engine, {
    maxVarsBytes: config.workflowMaxVarsBytes,
    changes,
  });
  return {
    service,
    /** Mount on the /platform/v1 app at "/". */
    routes: workflowRoutes(service),
    /** Continues this host's interrupted executions, then keeps claiming work and firing wait timeouts. */
    start: () => engine.start(),
    /** Stops taking work; steps in flight get until `deadline` (epoch ms) to be stored. */
    stop: (deadline: number) => engine.stop(deadline),
  };
}
