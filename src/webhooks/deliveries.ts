import crypto from "node:crypto";
import type { FunctionService } from "../functions/service.js";
import { isStrippedHeader, statusOf, type Invoker } from "../functions/invoke.js";
import { egressFetch, EgressError } from "../http/egress.js";
import type { SecretBox } from "../secrets/crypto.js";
import { ClaimLoop } from "../store/claimloop.js";
import type { Clock } from "../store/clock.js";
import { now, type Store } from "../store/db.js";
import { release, renew } from "../store/leases.js";
import { deliveryLeases, webhookStore, type DeliveryRow, type WebhookRow } from "./store.js";

/** The outcome of one delivery attempt. */
export interface AttemptOutcome {
  ok: boolean;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
}

export interface SenderOptions {
  functions: FunctionService;
  invoker: Invoker;
  box: SecretBox;
  publicUrl: string;
  allowPrivateNetwork: boolean;
  attemptTimeoutMs: number;
}

/** What is signed and sent: one event for one subscription. */
export interface Outgoing {
  /** The delivery id, sent as `X-Idempotency-Key`. */
  id: string;
  event: string;
  payload: string;
}

const maxErrorChars = 512;

function cut(text: string, max = maxErrorChars): string {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/** Lowercase hex HMAC-SHA256 of the raw body with the subscription's secret key. */
export function sign(secret: string, body: string): string {
  return crypto.createHmac("sha256", secret).update(body, "utf8").digest("hex");
}

/** The context a subscription's secret key is sealed under. */
export function secretContext(webhookId: string): string {
  return `webhook:${webhookId}`;
}

/** Makes one attempt of a delivery: to a URL under the egress policy, or through the invoke path. */
export class DeliverySender {
  constructor(private o: SenderOptions) {}

  /** The request headers: the subscription's own first, ours last so they always win. */
  headers(webhook: WebhookRow, out: Outgoing): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(JSON.parse(webhook.headers) as Record<string, string>))
      headers[k.toLowerCase()] = v;
    const secret = this.o.box.open(webhook.secret_sealed, secretContext(webhook.id));
    Object.assign(headers, {
      "content-type": "application/json",
      "user-agent": "Workerbase-Webhooks/1",
      "x-webhook-event": out.event,
      "x-webhook-signature": sign(secret, out.payload),
      "x-webhook-payload-version": "v2",
      "x-idempotency-key": out.id,
    });
    return headers;
  }

  async send(webhook: WebhookRow, out: Outgoing): Promise<AttemptOutcome> {
    const started = performance.now();
    const done = (ok: boolean, statusCode: number | null, error: string | null) => ({
      ok,
      statusCode,
      error: error === null ? null : cut(error),
      durationMs: Math.round((performance.now() - started) * 100) / 100,
    });
    const headers = this.headers(webhook, out);
    if (webhook.function_id) {
      // What the invoke route lets through, whatever a stored subscription says: above all no
      // X-Workerbase-* headers, which the runtime reads as ours (X-Workerbase-Probe would make
      // the delivery a deploy probe that never runs the handler).
      for (const name of Object.keys(headers)) if (isStrippedHeader(name)) delete headers[name];
      const fn = await this.o.functions.resolveForInvoke(webhook.function_id, webhook.project_id);
      if (!fn) return done(false, null, "The subscribed function no longer exists");
      const refused = this.o.invoker.refusal(fn);
      if (refused) return done(false, refused.status, refused.message);
      let result;
      try {
        ({ result } = await this.o.invoker.run(fn, {
          url: `${this.o.publicUrl}/platform/v1/functions/${fn.id}/invoke`,
          method: "POST",
          headers,
          body: Buffer.from(out.payload),
          trigger: "webhook",
          timeoutMs: this.o.attemptTimeoutMs,
        }));
      } catch (err) {
        return done(false, null, `The function could not be run: ${(err as Error).message}`);
      }
      if (result.kind !== "ok") {
        return done(false, statusOf(result), result.error ?? "The function failed");
      }
      const ok = result.status >= 200 && result.status < 300;
      return done(
        ok,
        result.status,
        ok ? null : `The function answered ${result.status}: ${result.body.toString("utf8")}`,
      );
    }
    try {
      const res = await egressFetch(webhook.url!, {
        method: "POST",
        headers,
        body: out.payload,
        timeoutMs: this.o.attemptTimeoutMs,
        allowPrivateNetwork: this.o.allowPrivateNetwork,
        maxResponseBytes: 1024 * 1024,
      });
      const ok = res.status >= 200 && res.status < 300;
      return done(
        ok,
        res.status,
        ok ? null : `The receiver answered ${res.status}: ${res.body.toString("utf8")}`,
      );
    } catch (err) {
      const message = err instanceof EgressError ? err.message : (err as Error).message;
      return done(false, null, message);
    }
  }
}

export interface WorkerOptions {
  /** This host, as the owner of the deliveries it claims. */
  hostId: string;
  clock: Clock;
  pollMs: number;
  maxInFlight: number;
  leaseMs: number;
  holdBackMs: number;
  retryDelaysMs: number[];
  log: (line: string) => void;
}

/**
 * Delivers pending events: claims due deliveries from the store (in event order per
 * subscription and conversation), attempts each, and schedules retries or gives up.
 */
export class DeliveryWorker {
  private loop: ClaimLoop<DeliveryRow>;

  constructor(
    private db: Store,
    private sender: DeliverySender,
    private o: WorkerOptions,
  ) {
    const ids = (items: DeliveryRow[]) => items.map((d) => d.id);
    this.loop = new ClaimLoop<DeliveryRow>({
      name: "webhook deliveries",
      pollMs: o.pollMs,
      maxInFlight: o.maxInFlight,
      leaseMs: o.leaseMs,
      clock: o.clock,
      key: (d) => d.id,
      claim: (limit, { now, ownToo }) =>
        webhookStore.claim(db, {
          owner: o.hostId,
          now,
          leaseMs: o.leaseMs,
          holdBackMs: o.holdBackMs,
          limit,
          ownToo,
        }),
      run: (d) => this.attempt(d),
      renew: (items, now) => renew(db, deliveryLeases, ids(items), o.hostId, now + o.leaseMs),
      release: (items) => release(db, deliveryLeases, ids(items), o.hostId),
      log: o.log,
    });
  }

  start(): void {
    this.loop.start();
  }

  /** New deliveries were stored: look for work now rather than at the next poll. */
  kick(): void {
    this.loop.kick();
  }

  /** Stops claiming; running attempts finish until `deadline` or go back to the store. */
  stop(deadline: number): Promise<void> {
    return this.loop.stop(deadline);
  }

  private async attempt(d: DeliveryRow): Promise<void> {
    const owner = this.o.hostId;
    const webhook = await webhookStore.anyById(this.db, d.webhook_id);
    const at = now();
    if (!webhook) {
      await webhookStore.finish(this.db, d.id, owner, {
        status: "failed",
        last_error: "Cancelled: the subscription was deleted",
        updated_at: at,
      });
      return;
    }
    const outcome = await this.sender.send(webhook, d);
    const attempts = d.attempts + 1;
    const finished = now();
    if (outcome.ok) {
      await webhookStore.finish(this.db, d.id, owner, {
        status: "delivered",
        attempts,
        last_status_code: outcome.statusCode,
        last_error: null,
        delivered_at: finished,
        updated_at: finished,
      });
      return;
    }
    const delay = this.o.retryDelaysMs[attempts - 1];
    await webhookStore.finish(this.db, d.id, owner, {
      status: delay === undefined ? "failed" : "pending",
      attempts,
      last_status_code: outcome.statusCode,
      last_error: outcome.error,
      next_attempt_at: delay === undefined ? d.next_attempt_at : this.o.clock.now() + delay,
      updated_at: finished,
    });
  }
}
