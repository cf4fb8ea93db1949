import type { Config } from "../host/config.js";
import type { FunctionService } from "../functions/service.js";
import type { Invoker } from "../functions/invoke.js";
import { loadMasterKey, SecretBox } from "../secrets/crypto.js";
import type { Clock } from "../store/clock.js";
import type { Store } from "../store/db.js";
import type { WorkflowService } from "../workflows/service.js";
import { DeliverySender, DeliveryWorker } from "./deliveries.js";
import { emitWorkflowEvents, InboundQueue } from "./inbound.js";
import { metaRoutes, webhookRoutes } from "./routes.js";
import { WebhookService } from "./service.js";
import { WhatsAppService } from "./whatsapp.js";

export interface WebhookDeps {
  db: Store;
  /** This host, as the owner of the deliveries and messages it claims. */
  hostId: string;
  /** The time of retries and leases. */
  clock: Clock;
  config: Config;
  functions: FunctionService;
  invoker: Invoker;
  log: (line: string) => void;
}

/**
 * The webhooks capability as the host wires it: services, routes (platform and Meta's root
 * route), the delivery worker and the inbound queue, started after listen and stopped on
 * shutdown.
 */
export function createWebhooks({
  db,
  hostId,
  clock,
  config,
  functions,
  invoker,
  log,
}: WebhookDeps) {
  const box = new SecretBox(loadMasterKey(config.dataDir, config.masterKey));
  const sender = new DeliverySender({
    functions,
    invoker,
    box,
    publicUrl: config.publicUrl,
    allowPrivateNetwork: config.allowPrivateNetwork,
    attemptTimeoutMs: config.webhookAttemptTimeoutMs,
  });
  const worker = new DeliveryWorker(db, sender, {
    hostId,
    clock,
    pollMs: config.webhookPollMs,
    maxInFlight: config.webhookMaxInFlight,
    leaseMs: config.webhookLeaseMs,
    holdBackMs: config.webhookHoldBackMs,
    retryDelaysMs: config.webhookRetryDelaysMs,
    log,
  });
  const webhooks = new WebhookService(db, box, functions, sender, {
    allowPrivateNetwork: config.allowPrivateNetwork,
    clock,
    kick: () => worker.kick(),
  });
  let inbound: InboundQueue | undefined;
  const whatsapp = new WhatsAppService(db, webhooks, {
    appSecret: config.whatsappAppSecret,
    verifyToken: config.whatsappVerifyToken,
    contextMessages: config.whatsappContextMessages,
    kickInbound: () => inbound?.kick(),
  });
  let started = false;

  return {
    webhooks,
    whatsapp,
    /** Mount on the /platform/v1 app at "/". */
    platformRoutes: webhookRoutes(webhooks, whatsapp),
    /** Mount on the root app at "/webhooks", before any catch-all route. */
    metaRoutes: metaRoutes(whatsapp),

    /**
     * Hands inbound messages to workflows (resume or start) and emits their executions'
     * ended/failed events to subscriptions. Until called, messages wait in the store.
     */
    connectWorkflows(workflows: WorkflowService) {
      // Kept through shutdown: an execution finishing then still gets its event stored.
      emitWorkflowEvents(workflows, webhooks, log);
      inbound = new InboundQueue(db, whatsapp, workflows, {
        hostId,
        clock,
        pollMs: config.webhookPollMs,
        maxInFlight: config.webhookMaxInFlight,
        leaseMs: config.workflowLeaseMs,
        log,
      });
      if (started) inbound.start();
    },

    /** Starts delivering (pending deliveries of earlier runs included). */
    start() {
      started = true;
      worker.start();
      inbound?.start();
    },

    /** Stops claiming work; attempts in flight finish until `deadline` or stay pending. */
    async stop(deadline: number) {
      await Promise.all([worker.stop(deadline), inbound?.stop(deadline)]);
    },
  };
}
