import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { deployFunction, startServer, type TestServer } from "../helpers/server.js";
import { cli, json } from "../helpers/cli.js";

let server: TestServer;
let dir: string;

before(async () => {
  server = await startServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "wb-cli-versions-"));
});
after(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const answering = (text: string) =>
  `async function handler() {\n  return new Response(${JSON.stringify(text)});\n}\n`;

/** Creates `slug` and deploys it once per text, each deploy with its `--message`. */
async function deployThree(slug: string): Promise<void> {
  const file = path.join(dir, `${slug}.js`);
  fs.writeFileSync(file, answering("one"));
  const created = await cli(server, ["functions", "create", slug, "--file", file]);
  assert.equal(created.code, 0, created.stderr);
  for (const [i, text] of ["one", "two", "three"].entries()) {
    fs.writeFileSync(file, answering(text));
    if (i > 0)
      assert.equal((await cli(server, ["functions", "update", slug, "--file", file])).code, 0);
    const deployed = await cli(server, ["functions", "deploy", slug, "--message", `ship ${text}`]);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.equal(deployed.stdout, `✓ deployed ${slug} (version ${i + 1})\n`);
  }
}

async function invoke(slug: string): Promise<string> {
  const r = await cli(server, ["functions", "invoke", slug]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** The `error` sentence the API itself answers, to compare with what the CLI prints. */
async function serverError(method: string, route: string, body: unknown): Promise<string> {
  const res = await server.call(method, route, body);
  assert.ok(res.status >= 400, `${method} ${route} answered ${res.status}`);
  return ((await res.json()) as { error: string }).error;
}

describe("workerbase functions versions and rollback", () => {
  it("deploy --message stores the note; versions lists them newest first, the live one marked", async () => {
    await deployThree("noted");
    const r = await cli(server, ["functions", "versions", "noted"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(lines[0], /^VERSION\s+LIVE\s+CREATED\s+MESSAGE$/);
    assert.equal(lines.length, 4, r.stdout);
    assert.match(lines[1], /^3\s+\*\s+\S+ ago\s+ship three$/);
    assert.match(lines[2], /^2\s+\S+ ago\s+ship two$/);
    assert.match(lines[3], /^1\s+\S+ ago\s+ship one$/);

    const asJson = json(await cli(server, ["functions", "versions", "noted", "--json"]));
    assert.deepEqual(
      asJson.data.map((v: any) => [v.version, v.live, v.message]),
      [
        [3, true, "ship three"],
        [2, false, "ship two"],
        [1, false, "ship one"],
      ],
    );
    assert.equal(asJson.meta.next_cursor, null);

    const page = await cli(server, ["functions", "versions", "noted", "--limit", "2"]);
    assert.equal(page.stdout.trimEnd().split("\n").length, 4, "two rows and a hint");
    assert.match(page.stdout, /older versions: workerbase functions versions noted --all/);
    const all = json(
      await cli(server, ["functions", "versions", "noted", "--limit", "1", "--all", "--json"]),
    );
    assert.deepEqual(
      all.data.map((v: any) => v.version),
      [3, 2, 1],
      "--all follows meta.next_cursor page after page",
    );
  });

  it("rollback goes to the version before the live one, then --to any; invocations follow", async () => {
    await deployThree("rolling");
    assert.equal(await invoke("rolling"), "three");

    const back = await cli(server, ["functions", "rollback", "rolling"]);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /^✓ Rolled back rolling to version 2 \(was 3\)\n/);
    assert.equal(await invoke("rolling"), "two", "the next call runs version 2's code");
    const listed = await cli(server, ["functions", "versions", "rolling"]);
    assert.match(listed.stdout, /^2\s+\*\s/m, "the live mark moved to version 2");
    assert.doesNotMatch(listed.stdout, /^3\s+\*/m);

    const toOne = await cli(server, ["functions", "rollback", "rolling", "--to", "1"]);
    assert.equal(toOne.code, 0, toOne.stderr);
    assert.match(toOne.stdout, /^✓ Rolled back rolling to version 1 \(was 2\)\n/);
    assert.equal(await invoke("rolling"), "one");

    const none = await cli(server, ["functions", "rollback", "rolling"]);
    assert.equal(none.code, 1);
    assert.equal(
      none.stderr,
      "error: version 1 is live and there is no older version to roll back to\n",
    );

    const same = await cli(server, ["functions", "rollback", "rolling", "--to", "1"]);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /version 1 of rolling is already live; nothing changed/);

    const sentence = await serverError("POST", "/functions/rolling/rollback", { version: 99 });
    const unknown = await cli(server, ["functions", "rollback", "rolling", "--to", "99"]);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr, `error: ${sentence}\n`, "the server's 404 sentence as it is");
    assert.equal(await invoke("rolling"), "one", "a failed rollback changes nothing");

    const bad = await cli(server, ["functions", "rollback", "rolling", "--to", "two"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--to must be a version number/);

    const fn = json(await cli(server, ["functions", "get", "rolling", "--json"])).data;
    assert.equal(fn.live_version, 1);
    assert.match(fn.code, /"three"/, "the draft is left as it was");
    const redeployed = await cli(server, ["functions", "deploy", "rolling"]);
    assert.equal(redeployed.stdout, "✓ deployed rolling (version 4)\n");
    assert.equal(await invoke("rolling"), "three");
  });

  it("a function never deployed has no versions and nothing to roll back to", async () => {
    const file = path.join(dir, "fresh.js");
    fs.writeFileSync(file, answering("fresh"));
    assert.equal((await cli(server, ["functions", "create", "fresh", "--file", file])).code, 0);
    const listed = await cli(server, ["functions", "versions", "fresh"]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^fresh has no versions yet; deploy it with: /);
    const back = await cli(server, ["functions", "rollback", "fresh"]);
    assert.equal(back.code, 1);
    assert.match(back.stderr, /^error: fresh has never been deployed/);
    const missing = await cli(server, ["functions", "versions", "nosuch"]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'error: function "nosuch" not found\n');
  });
});

describe("workerbase functions schedules", () => {
  it("adds, lists with the next run times, refuses an invalid cron in the server's words, removes", async () => {
    await deployFunction(server, { name: "Ticker", code: answering("tick") });
    const empty = await cli(server, ["functions", "schedules", "ticker"]);
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(
      empty.stdout,
      /^ticker has no schedules; add one with: workerbase functions schedules ticker --add /,
    );

    const added = await cli(server, [
      "functions",
      "schedules",
      "ticker",
      "--add",
      "*/5 * * * *",
      "--timezone",
      "Europe/Berlin",
    ]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^✓ added schedule \[0\] of ticker\n/);
    const time = String.raw`\d{4}-\d\d-\d\d \d\d:\d[05] \(UTC\+0[12]:00\)`;
    const entry = new RegExp(
      String.raw`^  \[0\] \*/5 \* \* \* \*  Europe/Berlin  body \{\}\n      next: ${time}, ${time}, ${time}$`,
      "m",
    );
    assert.match(added.stdout, entry);

    const withBody = await cli(server, [
      "functions",
      "schedules",
      "ticker",
      "--add",
      "0 9 * * MON-FRI",
      "--body",
      '{"report":"daily"}',
    ]);
    assert.equal(withBody.code, 0, withBody.stderr);
    const listed = await cli(server, ["functions", "schedules", "ticker"]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, entry);
    assert.match(listed.stdout, /^  \[1\] 0 9 \* \* MON-FRI  UTC  body \{"report":"daily"\}$/m);
    assert.match(listed.stdout, /^      next: \d{4}-\d\d-\d\d 09:00 \(UTC\)/m);
    const stored = json(await cli(server, ["functions", "schedules", "ticker", "--json"])).data;
    assert.deepEqual(
      stored.map((s: any) => [s.cron, s.timezone, s.body]),
      [
        ["*/5 * * * *", "Europe/Berlin", {}],
        ["0 9 * * MON-FRI", "UTC", { report: "daily" }],
      ],
    );
    assert.ok(stored.every((s: any) => typeof s.next_run_at === "string"));

    // The list the CLI sends for --add: the two entries and the new one, [2].
    const sentence = await serverError("PATCH", "/functions/ticker", {
      function: {
        schedules: [
          ...stored.map((s: any) => ({ cron: s.cron, timezone: s.timezone, body: s.body })),
          { cron: "61 * * * *" },
        ],
      },
    });
    assert.match(sentence, /schedules(\[2\]|\.2)\.cron: .*61/, "names the entry and the field");
    const invalid = await cli(server, ["functions", "schedules", "ticker", "--add", "61 * * * *"]);
    assert.equal(invalid.code, 1);
    assert.equal(invalid.stderr, `error: ${sentence}\n`, "the server's 400 sentence as it is");

    const removed = await cli(server, ["functions", "schedules", "ticker", "--remove", "0"]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /^✓ removed schedule \[0\] \(\*\/5 \* \* \* \*\) of ticker\n/);
    assert.match(removed.stdout, /^  \[0\] 0 9 \* \* MON-FRI/m);
    const outOfRange = await cli(server, ["functions", "schedules", "ticker", "--remove", "1"]);
    assert.equal(outOfRange.code, 2);
    assert.match(outOfRange.stderr, /--remove takes the index of a schedule \(0\.\.0\), got "1"/);
    const stray = await cli(server, ["functions", "schedules", "ticker", "--timezone", "UTC"]);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /--timezone and --body go with --add/);
  });
});

describe("schedules in function.yaml", () => {
  it("pull writes schedules: without defaults; push of an edited file changes them", async () => {
    await deployFunction(server, {
      name: "Reporter",
      code: answering("report"),
      schedules: [
        { cron: "0 9 * * MON-FRI", timezone: "Europe/Berlin", body: { report: "daily" } },
        { cron: "*/15 * * * *" },
      ],
    });
    await deployFunction(server, { name: "Quiet", code: answering("quiet") });
    const project = path.join(dir, "project");
    const pulled = await cli(server, ["pull", project]);
    assert.equal(pulled.code, 0, pulled.stderr);
    const yamlFile = path.join(project, "functions", "reporter", "function.yaml");
    const yaml = fs.readFileSync(yamlFile, "utf8");
    assert.ok(
      yaml.endsWith(
        [
          "schedules:",
          "  - cron: 0 9 * * MON-FRI",
          "    timezone: Europe/Berlin",
          "    body:",
          "      report: daily",
          '  - cron: "*/15 * * * *"',
          "",
        ].join("\n"),
      ),
      yaml,
    );
    assert.doesNotMatch(yaml, /next_run_at|timezone: UTC/);
    const quiet = fs.readFileSync(
      path.join(project, "functions", "quiet", "function.yaml"),
      "utf8",
    );
    assert.doesNotMatch(quiet, /schedules/, "no schedules: key when there are none");

    const clean = await cli(server, ["push", project]);
    assert.equal(clean.code, 0, clean.stderr);
    assert.match(clean.stdout, /= reporter\s+unchanged/, "a pulled file round-trips");

    fs.writeFileSync(
      yamlFile,
      yaml.replace(
        /schedules:[\s\S]*$/,
        'schedules:\n  - cron: "30 6 * * *"\n    timezone: Asia/Tokyo\n',
      ),
    );
    // Schedules apply at once: saved without a deploy (which would undo a rollback).
    const pushed = await cli(server, ["push", project]);
    assert.equal(pushed.code, 0, pushed.stderr + pushed.stdout);
    assert.match(pushed.stdout, /~ reporter\s+update schedules \(applies at once, no deploy\)/);
    assert.match(pushed.stdout, /✓ reporter: updated/);
    const fn = ((await (await server.call("GET", "/functions/reporter")).json()) as any).data;
    assert.deepEqual(
      fn.schedules.map((s: any) => [s.cron, s.timezone, s.body]),
      [["30 6 * * *", "Asia/Tokyo", {}]],
    );
    assert.equal(fn.version, 1, "no deploy for a schedules-only change");

    const entry = path.join(project, "functions", "reporter", "index.js");
    fs.writeFileSync(entry, answering("report v2"));
    const redeployed = await cli(server, ["push", project, "--message", "from push"]);
    assert.equal(redeployed.code, 0, redeployed.stderr + redeployed.stdout);
    assert.match(redeployed.stdout, /~ reporter\s+update code; deploy/);
    assert.match(redeployed.stdout, /✓ reporter: deployed \(version 2\)/);
    const versions = json(await cli(server, ["functions", "versions", "reporter", "--json"]));
    assert.equal(versions.data[0].message, "from push", "push --message goes with its deploys");

    fs.writeFileSync(yamlFile, yaml.replace(/schedules:[\s\S]*$/, ""));
    const cleared = await cli(server, ["push", project]);
    assert.equal(cleared.code, 0, cleared.stderr + cleared.stdout);
    const after = ((await (await server.call("GET", "/functions/reporter")).json()) as any).data;
    assert.deepEqual(after.schedules, [], "removing the key removes the schedules");
  });

  it("a bad schedules: entry names the file, the line and the field", async () => {
    const folder = path.join(dir, "bad", "functions", "bad-cron");
    fs.mkdirSync(folder, { recursive: true });
    fs.writeFileSync(path.join(folder, "index.js"), answering("bad"));
    const yamlFile = path.join(folder, "function.yaml");
    const push = async (manifest: string) => {
      fs.writeFileSync(yamlFile, manifest);
      const r = await cli(server, ["push", path.join(dir, "bad")], { cwd: path.join(dir, "bad") });
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.stdout, "", "nothing is planned or changed");
      return r.stderr;
    };
    assert.equal(
      await push('name: Bad\nschedules:\n  - cron: "0 * * * *"\n  - crn: "5 * * * *"\n'),
      'error: functions/bad-cron/function.yaml:4: unknown key "schedules[1].crn"; did you mean "cron"?\n',
    );
    assert.match(
      await push('name: Bad\nschedules:\n  - cron: "0 * * * *"\n    timezone: Mars/Olympus\n'),
      /^error: functions\/bad-cron\/function\.yaml:4: schedules\[0\]\.timezone: must be an IANA time zone/,
    );
    assert.match(
      await push("name: Bad\nschedules:\n  - cron: 0 25 * * *\n"),
      /^error: functions\/bad-cron\/function\.yaml:3: schedules\[0\]\.cron: /,
    );
    assert.match(
      await push("name: Bad\nschedules:\n  cron: 0 * * * *\n"),
      /^error: functions\/bad-cron\/function\.yaml:3: schedules: .*array/,
    );
  });
});

describe("help for versions, rollback and schedules", () => {
  it("--help lists the new commands and their flags", async () => {
    const r = await cli(undefined, ["--help"]);
    assert.equal(r.code, 0);
    for (const command of ["functions versions", "functions rollback", "functions schedules"]) {
      assert.match(r.stdout, new RegExp(`^  ${command} <fn>`, "m"), `--help lists "${command}"`);
    }
    assert.match(r.stdout, /^  functions deploy <fn> \[--message text\]/m);
    const deploy = await cli(undefined, ["functions", "deploy", "--help"]);
    assert.match(deploy.stdout, /-m, --message text/);
    const schedules = await cli(undefined, ["functions", "schedules", "--help"]);
    for (const flag of ["--add cron", "--timezone tz", "--body JSON", "--remove index"]) {
      assert.ok(schedules.stdout.includes(flag), `schedules --help shows ${flag}`);
    }
  });
});
