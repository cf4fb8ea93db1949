import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { render } from "../../src/workflows/template.js";

const scope = {
  vars: { name: "Ann", n: 3, list: [1, { x: "y" }], obj: { a: 1 }, nothing: null },
  context: { phone_number: "+1555" },
  system: { workflow_execution_id: "e1" },
};

describe("workflow templates", () => {
  it("a string that is exactly one template keeps the value's type", () => {
    assert.equal(render("{{vars.n}}", scope), 3);
    assert.deepEqual(render("{{ vars.obj }}", scope), { a: 1 });
    assert.equal(render("{{vars.list.1.x}}", scope), "y");
    assert.equal(render("{{system.workflow_execution_id}}", scope), "e1");
    assert.equal(render("{{vars.missing.deep}}", scope), null);
  });

  it("inside longer text values are interpolated, objects as JSON and missing paths as nothing", () => {
    assert.equal(
      render("Hi {{vars.name}} ({{context.phone_number}}) x{{vars.n}}", scope),
      "Hi Ann (+1555) x3",
    );
    assert.equal(
      render("o={{vars.obj}} m=[{{vars.missing}}] z=[{{vars.nothing}}]", scope),
      'o={"a":1} m=[] z=[]',
    );
    const untouched = String(render("{{other.x}} and {{vars}}", scope));
    assert.ok(untouched.startsWith('{{other.x}} and {"name":"Ann"'), untouched);
  });

  it("fills every string inside objects and arrays, leaving keys and other values alone", () => {
    assert.deepEqual(
      render(
        { "{{vars.name}}": ["{{vars.n}}", 2, true, null], to: "{{context.phone_number}}" },
        scope,
      ),
      {
        "{{vars.name}}": [3, 2, true, null],
        to: "+1555",
      },
    );
  });
});
