import { z } from "zod";
import { CronTrigger } from "../schedules/cron.js";
import { isUuid } from "../http/validate.js";
import { slugPattern } from "../functions/schema.js";
import { headerIssues } from "../webhooks/headers.js";

const Slug = z
  .string()
  .max(64)
  .regex(slugPattern, "must be lowercase letters, digits and single hyphens")
  .refine((s) => !isUuid(s), "must not have the shape of a UUID");

const VarName = z.string().min(1).max(200);
const FunctionRef = {
  function_id: z.string().min(1).max(200).optional(),
  function_slug: z.string().min(1).max(200).optional(),
};
const oneFunction = (c: { function_id?: string; function_slug?: string }) =>
  (c.function_id === undefined) !== (c.function_slug === undefined);
const oneFunctionMessage = { message: "needs exactly one of function_id and function_slug" };

/** A webhook node's headers: names and (template) values the transport can carry, none of ours. */
const WebhookHeaders = z.record(z.string(), z.string()).superRefine((headers, ctx) => {
  for (const { name, message } of headerIssues(headers))
    ctx.addIssue({ code: "custom", path: [name], message });
});

/** The config of each node type (§5.2); unknown keys are refused to catch typos. */
export const nodeConfigs = {
  start: z.strictObject({}),
  function: z
    .strictObject({ ...FunctionRef, save_response_to: VarName.optional() })
    .refine(oneFunction, oneFunctionMessage),
  decide: z
    .strictObject({
      decision_type: z.literal("function", 'must be "function"'),
      ...FunctionRef,
      conditions: z
        .array(
          z.strictObject({
            label: z.string().min(1).max(100),
            description: z.string().max(2000).optional(),
          }),
        )
        .min(1)
        .max(50),
    })
    .refine(oneFunction, oneFunctionMessage),
  set_variable: z.strictObject({ variable: VarName, value: z.unknown() }),
  webhook: z.strictObject({
    url: z.string().min(1).max(4096),
    method: z.enum(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]).optional(),
    headers: WebhookHeaders.optional(),
    body: z.unknown().optional(),
    save_response_to: VarName.optional(),
  }),
  wait_for_response: z.strictObject({
    save_response_to: VarName.optional(),
    timeout_minutes: z
      .number()
      .positive()
      .max(366 * 24 * 60)
      .optional(),
  }),
  end: z.strictObject({}),
};

export type NodeType = keyof typeof nodeConfigs;
export const nodeTypes = Object.keys(nodeConfigs) as NodeType[];

export type FunctionConfig = z.infer<(typeof nodeConfigs)["function"]>;
export type DecideConfig = z.infer<(typeof nodeConfigs)["decide"]>;
export type SetVariableConfig = z.infer<(typeof nodeConfigs)["set_variable"]>;
export type WebhookConfig = z.infer<(typeof nodeConfigs)["webhook"]>;
export type WaitConfig = z.infer<(typeof nodeConfigs)["wait_for_response"]>;

/** The shape of a definition; node configs are checked per type afterwards (definition.ts). */
export const DefinitionShape = z.looseObject({
  nodes: z
    .array(
      z.looseObject({
        id: z.string().min(1).max(100),
        data: z.looseObject({
          node_type: z.string(),
          config: z.record(z.string(), z.unknown()).optional(),
          display_name: z.string().max(200).optional(),
        }),
      }),
    )
    .min(1)
    .max(500),
  edges: z
    .array(
      z.looseObject({
        source: z.string().min(1),
        target: z.string().min(1),
        label: z.string().min(1).max(100),
      }),
    )
    .max(2000),
});

export type Definition = z.infer<typeof DefinitionShape>;

const InboundTrigger = z.strictObject({
  type: z.literal("inbound_message"),
  phone_number_id: z.string().min(1).max(100).optional(),
});
/** `inbound_message` (a WhatsApp message) or `cron` (one execution per tick, section 8.2). */
const WorkflowTrigger = z.discriminatedUnion(
  "type",
  [InboundTrigger, CronTrigger],
  'must have "type" "inbound_message" or "cron"',
);
export type WorkflowTrigger = z.infer<typeof WorkflowTrigger>;
export type InboundTrigger = z.infer<typeof InboundTrigger>;

const fields = {
  name: z.string().trim().min(1).max(100),
  slug: Slug.optional(),
  // Checked by validateDefinition, which names the node at fault.
  definition: z.unknown().optional(),
  triggers: z.array(WorkflowTrigger).max(20).optional(),
};

/** `{"workflow": {...}}` of POST /workflows. */
export const WorkflowCreate = z.strictObject(fields);
/** `{"workflow": {...}}` of PATCH /workflows/{id}. */
export const WorkflowUpdate = z.strictObject({ ...fields, name: fields.name.optional() });
export type WorkflowCreate = z.infer<typeof WorkflowCreate>;
export type WorkflowUpdate = z.infer<typeof WorkflowUpdate>;

const JsonObject = z.record(z.string(), z.unknown());

/** `{"execution": {...}}` of POST /workflows/{id}/executions. */
export const ExecutionCreate = z.strictObject({
  vars: JsonObject.optional(),
  context: JsonObject.optional(),
});
export type ExecutionCreate = z.infer<typeof ExecutionCreate>;

/** The body of POST /workflow_executions/{id}/resume. */
export const ResumeInput = z.strictObject({ input: z.string().max(64 * 1024) });
