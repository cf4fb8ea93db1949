import { ClaimLoop } from "../store/claimloop.js";
import type { Clock } from "../store/clock.js";
import type { Store } from "../store/db.js";
import { release, renew } from "../store/leases.js";
import type { FinishedExecution, WorkflowService } from "../workflows/service.js";
import { executionFinished } from "./events.js";
import type { WebhookService } from "./service.js";
import type { WhatsAppService } from "./whatsapp.js";
import { inboundLeases, whatsappStore, type MessageRow } from "./whatsapp-store.js";

/** What the inbound queue needs of the workflows engine. */
export type InboundWorkflows = Pick<
  WorkflowService,
  "resumeWaitingForConversation" | "startForTrigger"
>;

export interface InboundOptions {
  /** This host, as the owner of the messages it claims. */
  hostId: string;
  clock: Clock;
  pollMs: number;
  maxInFlight: number;
  leaseMs: number;
  log: (line: string) => void;
}

/**
 * Hands stored inbound messages to workflows, from the store (so a flood is queued, not
 * dropped, and a restart loses none): one message at a time per conversation, in order. A
 * conversation with waiting executions resumes them with the text; otherwise the project's
 * `inbound_message` workflows start, with `whatsapp_context` in both cases.
 */
export class InboundQueue {
  private loop: ClaimLoop<MessageRow>;
  private stopping = false;

  constructor(
    private db: Store,
    private whatsapp: WhatsAppService,
    private workflows: InboundWorkflows,
    private o: InboundOptions,
  ) {
    const seqs = (items: MessageRow[]) => items.map((m) => m.seq);
    this.loop = new ClaimLoop<MessageRow>({
      name: "inbound messages",
      pollMs: o.pollMs,
      maxInFlight: o.maxInFlight,
      leaseMs: o.leaseMs,
      clock: o.clock,
      key: (m) => m.seq,
      claim: (limit, { now, ownToo }) =>
        whatsappStore.claimDispatch(db, {
          owner: o.hostId,
          now,
          leaseMs: o.leaseMs,
          limit,
          ownToo,
        }),
      run: (m) => this.dispatch(m),
      renew: (items, now) => renew(db, inboundLeases, seqs(items), o.hostId, now + o.leaseMs),
      release: (items) => release(db, inboundLeases, seqs(items), o.hostId),
      log: o.log,
    });
  }

  start(): void {
    this.loop.start();
  }

  kick(): void {
    this.loop.kick();
  }

  stop(deadline: number): Promise<void> {
    this.stopping = true;
    return this.loop.stop(deadline);
  }

  private async dispatch(m: MessageRow): Promise<void> {
    try {
      const context = await this.whatsapp.context(m.project_id, m.conversation_id, m.seq);
      if (context) {
        const conversation = context.conversation;
        const resumed = await this.workflows.resumeWaitingForConversation(
          m.project_id,
          m.conversation_id,
          m.content,
          { whatsappContext: context },
        );
        if (resumed.length === 0) {
          await this.workflows.startForTrigger(
            m.project_id,
            { type: "inbound_message", phone_number_id: conversation.phone_number_id },
            {
              whatsappContext: context,
              conversationId: m.conversation_id,
              triggerType: "inbound_message",
            },
          );
        }
      }
    } catch (err) {
      if (this.stopping) {
        // Cut short by shutdown: hand it over again after the next start.
        await release(this.db, inboundLeases, [m.seq], this.o.hostId);
        return;
      }
      // A message workflows cannot take is not retried forever: it would hold its conversation.
      this.o.log(`inbound message ${m.id}: workflows failed: ${(err as Error).message}`);
    }
    await whatsappStore.finishDispatch(this.db, m.seq, this.o.hostId);
  }
}

/** Emits `workflow.execution.ended` / `.failed` to subscriptions as executions finish. */
export function emitWorkflowEvents(
  workflows: Pick<WorkflowService, "onExecutionFinished">,
  webhooks: WebhookService,
  log: (line: string) => void,
): () => void {
  return workflows.onExecutionFinished((e: FinishedExecution) => {
    const event = executionFinished({
      projectId: e.projectId,
      executionId: e.execution.id,
      workflowId: e.execution.workflow_id,
      workflowName: e.workflowName,
      status: e.event === "workflow.execution.failed" ? "failed" : "ended",
      conversationId: e.conversationId,
      errorDetails: e.execution.error_details,
      at: e.execution.updated_at,
    });
    webhooks
      .emit(e.projectId, [event])
      .catch((err) =>
        log(`storing ${e.event} for subscriptions failed: ${(err as Error).message}`),
      );
  });
}
