import assert from "node:assert/strict";
import crypto from "node:crypto";
import { describe, it } from "node:test";
import { parseMetaPayload, toE164, verifySignature } from "../../src/webhooks/meta.js";

describe("Meta's WhatsApp payloads", () => {
  it("phone numbers become E.164", () => {
    assert.equal(toE164("15551234567"), "+15551234567");
    assert.equal(toE164("+44 7700 900123"), "+447700900123");
    assert.equal(toE164("0044 (7700) 900-123"), "+447700900123");
    assert.equal(toE164("+123"), "+123");
    for (const bad of ["", "+", "abc", "+0123", "12", "+1234567890123456"])
      assert.equal(toE164(bad), null, bad);
  });

  it("the signature is sha256= and the hex HMAC of the raw body", () => {
    const raw = Buffer.from('{"a":1}');
    const hex = crypto.createHmac("sha256", "s").update(raw).digest("hex");
    assert.equal(verifySignature("s", raw, `sha256=${hex}`), true);
    assert.equal(verifySignature("s", raw, `sha256=${hex.toUpperCase()}`), true);
    assert.equal(verifySignature("s", raw, hex), false);
    assert.equal(verifySignature("t", raw, `sha256=${hex}`), false);
    assert.equal(verifySignature("s", raw, undefined), false);
  });

  it("messages are read per business number, with contact names; the rest is ignored", () => {
    const body = {
      object: "whatsapp_business_account",
      entry: [
        {
          changes: [
            {
              value: {
                metadata: { phone_number_id: 106540352242922 },
                contacts: [{ wa_id: "15550001111", profile: { name: "Ada" } }],
                messages: [
                  {
                    from: "15550001111",
                    id: "wamid.1",
                    timestamp: "1700000000",
                    type: "text",
                    text: { body: "hi" },
                  },
                  { from: "not a number", id: "wamid.2", type: "text" },
                  { from: "15550001111", id: 3, type: "text" },
                ],
              },
            },
            { value: { metadata: { phone_number_id: "x" }, statuses: [{ id: "wamid.9" }] } },
          ],
        },
      ],
    };
    const batches = parseMetaPayload(Buffer.from(JSON.stringify(body)));
    assert.equal(batches.length, 1);
    assert.equal(batches[0].phoneNumberId, "106540352242922");
    assert.deepEqual(
      batches[0].messages.map((m) => [m.id, m.contactName, m.timestamp]),
      [["wamid.1", "Ada", "1700000000"]],
    );
    assert.deepEqual(parseMetaPayload(Buffer.from('{"object":"page","entry":[]}')), []);
    assert.throws(() => parseMetaPayload(Buffer.from("nope")), /not valid JSON/);
  });
});
