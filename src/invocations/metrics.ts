import type { ResultKind } from "../runtime/process.js";

const bucketsSeconds = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
];

/** In-process counters of invocations, rendered in Prometheus' text format at /metrics. */
export class InvocationMetrics {
  private total = { success: 0, failed: 0 };
  private byKind = new Map<ResultKind, number>();
  private buckets = new Array<number>(bucketsSeconds.length).fill(0);
  private sumSeconds = 0;
  private count = 0;
  private hostLabel: string;

  /** `hostId` labels every sample, so a cluster's hosts can be told apart. */
  constructor(hostId = "") {
    this.hostLabel = `host="${hostId.replace(/["\\\n]/g, "_")}"`;
  }

  observe(kind: ResultKind, ok: boolean, durationMs: number): void {
    this.total[ok ? "success" : "failed"]++;
    this.byKind.set(kind, (this.byKind.get(kind) ?? 0) + 1);
    const seconds = durationMs / 1000;
    this.sumSeconds += seconds;
    this.count++;
    for (let i = 0; i < bucketsSeconds.length; i++)
      if (seconds <= bucketsSeconds[i]) this.buckets[i]++;
  }

  /** The metrics text, with the runtime's per-process gauges appended. */
  render(
    runtime: {
      tier_mb: number;
      index: number;
      state: string;
      in_flight: number;
      loaded_isolates: number;
      rss_bytes: number;
    }[],
    pool: { restarts: number; recycles: number; kills: number },
  ): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string) =>
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    metric("workerbase_invocations_total", "counter", "Invocations by outcome.");
    lines.push(`workerbase_invocations_total{status="success"} ${this.total.success}`);
    lines.push(`workerbase_invocations_total{status="failed"} ${this.total.failed}`);
    metric(
      "workerbase_invocation_results_total",
      "counter",
      "Invocations by result kind (ok, threw, timeout, crashed, ...).",
    );
    for (const [kind, n] of this.byKind)
      lines.push(`workerbase_invocation_results_total{kind="${kind}"} ${n}`);
    metric(
      "workerbase_invocation_timeouts_total",
      "counter",
      "Invocations that ran past their timeout.",
    );
    lines.push(`workerbase_invocation_timeouts_total ${this.byKind.get("timeout") ?? 0}`);
    metric(
      "workerbase_invocation_duration_seconds",
      "histogram",
      "Invocation latency seen by the host.",
    );
    bucketsSeconds.forEach((le, i) =>
      lines.push(`workerbase_invocation_duration_seconds_bucket{le="${le}"} ${this.buckets[i]}`),
    );
    lines.push(`workerbase_invocation_duration_seconds_bucket{le="+Inf"} ${this.count}`);
    lines.push(`workerbase_invocation_duration_seconds_sum ${this.sumSeconds}`);
    lines.push(`workerbase_invocation_duration_seconds_count ${this.count}`);
    metric(
      "workerbase_runtime_restarts_total",
      "counter",
      "workerd processes that died and were restarted.",
    );
    lines.push(`workerbase_runtime_restarts_total ${pool.restarts}`);
    metric(
      "workerbase_runtime_kills_total",
      "counter",
      "workerd processes killed for being stuck.",
    );
    lines.push(`workerbase_runtime_kills_total ${pool.kills}`);
    metric(
      "workerbase_runtime_recycles_total",
      "counter",
      "workerd processes replaced at their memory or isolate bound.",
    );
    lines.push(`workerbase_runtime_recycles_total ${pool.recycles}`);
    const label = (p: (typeof runtime)[number]) =>
      `{tier_mb="${p.tier_mb}",process="${p.index}",state="${p.state}"}`;
    metric("workerbase_runtime_isolates", "gauge", "Isolates loaded per workerd process.");
    for (const p of runtime)
      lines.push(`workerbase_runtime_isolates${label(p)} ${p.loaded_isolates}`);
    metric("workerbase_runtime_resident_bytes", "gauge", "Resident memory per workerd process.");
    for (const p of runtime)
      lines.push(`workerbase_runtime_resident_bytes${label(p)} ${p.rss_bytes}`);
    metric("workerbase_runtime_in_flight", "gauge", "Invocations inside each workerd process.");
    for (const p of runtime) lines.push(`workerbase_runtime_in_flight${label(p)} ${p.in_flight}`);
    metric("workerbase_host_resident_bytes", "gauge", "Resident memory of the host process.");
    lines.push(`workerbase_host_resident_bytes ${process.memoryUsage.rss()}`);
    const labelled = lines.map((line) => {
      if (line.startsWith("#")) return line;
      const brace = line.indexOf("{");
      const space = line.indexOf(" ");
      return brace >= 0 && brace < space
        ? `${line.slice(0, brace + 1)}${this.hostLabel},${line.slice(brace + 1)}`
        : `${line.slice(0, space)}{${this.hostLabel}}${line.slice(space)}`;
    });
    return labelled.join("\n") + "\n";
  }
}
