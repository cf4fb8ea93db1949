import { UsageError, stringFlag } from "./args.js";
import { jsonFlag, type Command } from "./command.js";
import { platform } from "./http.js";
import { details, out } from "./output.js";

interface Simulated {
  data: { message_id: string; conversation_id: string };
}

/** `workerbase whatsapp ...`: the WhatsApp simulator. */
export const whatsappCommands: Command[] = [
  {
    name: "whatsapp simulate",
    usage: '--phone +15551234567 --text "hi" [--phone-number-id id] [--json]',
    summary: "inject an inbound WhatsApp message, as if Meta had sent it",
    args: [0, 0],
    flags: {
      ...jsonFlag,
      phone: { type: "string", value: "E.164", help: "the sender's number, such as +15551234567" },
      text: { type: "string", value: "text", help: "the message text" },
      "phone-number-id": {
        type: "string",
        value: "id",
        help: "the business number it reaches (default: simulator)",
      },
    },
    async run(args) {
      const phone = stringFlag(args, "phone");
      const text = stringFlag(args, "text");
      if (!phone) throw new UsageError("--phone is required, such as --phone +15551234567");
      if (text === undefined || text === "")
        throw new UsageError('--text is required, such as --text "hi"');
      const pnid = stringFlag(args, "phone-number-id");
      const body = await platform(args).call<Simulated>("POST", "/whatsapp/simulate", {
        json: { phone_number: phone, text, ...(pnid ? { phone_number_id: pnid } : {}) },
      });
      if (args.flags.json) return out.json(body);
      out.line(
        details([
          ["message_id", body.data.message_id],
          ["conversation_id", body.data.conversation_id],
        ]),
      );
    },
  },
];
