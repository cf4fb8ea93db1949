// `npm run bench`: runs every scenario, prints the tables, and saves them with the raw numbers
// to bench/out/ (the curated results with their explanation live in bench/RESULTS.md).
//
// Flags: --quick (small counts, a minute or two), --rounds N, --duration MS, --warmup MS,
// --functions N (memory: the largest step), --cold N, --deploys N, --parallel N.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { fullRun, runBench, type BenchOptions } from "./bench.js";
import { render } from "./report.js";
import { benchWorkflows, type WorkflowBench } from "./workflows.js";

const args = process.argv.slice(2);
function flag(name: string): number | undefined {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const n = Number(args[i + 1]);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} needs a number`);
  return n;
}

const quick: Partial<BenchOptions> = {
  warmupMs: 500,
  durationMs: 2000,
  rounds: 1,
  opsDurationMs: 1500,
  coldFunctions: 20,
  deployFunctions: 20,
  memorySteps: [200, 1000],
  isolateSample: 100,
};

const options: BenchOptions = {
  ...fullRun,
  ...(args.includes("--quick") ? quick : {}),
  log: (line) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`),
};
options.rounds = flag("rounds") ?? options.rounds;
options.durationMs = flag("duration") ?? options.durationMs;
options.warmupMs = flag("warmup") ?? options.warmupMs;
options.coldFunctions = flag("cold") ?? options.coldFunctions;
options.deployFunctions = flag("deploys") ?? options.deployFunctions;
options.memoryParallel = flag("parallel") ?? options.memoryParallel;
const functions = flag("functions");
if (functions !== undefined)
  options.memorySteps = [Math.min(1000, functions), functions].filter(
    (v, i, a) => a.indexOf(v) === i,
  );

const command = ["npm run bench", ...(args.length ? ["--", ...args] : [])].join(" ");
const results = await runBench(options);
const workflows = await benchWorkflows(args.includes("--quick") ? 5 : 30, options.log);
const markdown = render(results, command) + renderWorkflows(workflows);
const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "out");
fs.mkdirSync(out, { recursive: true });
const stamp = results.date.replace(/[:.]/g, "-");
fs.writeFileSync(
  path.join(out, `${stamp}.json`),
  JSON.stringify({ ...results, workflows }, null, 2),
);
fs.writeFileSync(path.join(out, `${stamp}.md`), markdown);
console.log(markdown);
console.error(`saved bench/out/${stamp}.md and .json`);

function renderWorkflows(w: WorkflowBench): string {
  const ms = (v: number) => `${v.toFixed(2)} ms`;
  return [
    "",
    "### Workflow engine overhead per step",
    "",
    `Engine time (execution span minus the functions' own time) divided by steps, over ${w.runs} runs.`,
    "",
    "| workflow | per step p50 | per step p90 |",
    "|---|---|---|",
    `| ${w.setVariableSteps} set_variable steps | ${ms(w.setVariablePerStepMs.p50)} | ${ms(w.setVariablePerStepMs.p90)} |`,
    `| ${w.functionSteps} function steps (calls subtracted; call p50 ${ms(w.functionCallPerStepMs.p50)}) | ${ms(w.functionEnginePerStepMs.p50)} | ${ms(w.functionEnginePerStepMs.p90)} |`,
    "",
  ].join("\n");
}
