// deploy/grafana-dashboard.json queries only what twill exports: the metric names in every
// panel's PromQL are collected and compared with the sample names a running agent's /metrics
// serves (in-process through the health handler, and from a real `twill agent --init` in a
// namespace this test makes, prefix twa-db, under `flock /tmp/twill-kernel.lock`).
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { healthHandler } from "../../lib/agent/health.ts";
import { AgentState } from "../../lib/agent/state.ts";
import { parseAllDocuments } from "yaml";
import { httpBody, httpStatus, startAgent, Topology, waitFor } from "../e2e/topology.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

interface Panel {
  title: string;
  targets?: { expr: string }[];
}

function dashboard(): { panels: Panel[]; uid: string; title: string } {
  return JSON.parse(Deno.readTextFileSync(join(ROOT, "deploy", "grafana-dashboard.json")));
}

/** Every twill_… name the dashboard's expressions use. */
function queriedNames(): Set<string> {
  const names = new Set<string>();
  for (const p of dashboard().panels) {
    assert.ok(p.targets?.length, `panel "${p.title}" queries something`);
    for (const t of p.targets!) {
      for (const m of t.expr.matchAll(/\btwill_[a-z0-9_]+/g)) names.add(m[0]);
    }
  }
  return names;
}

/** The sample names of a text exposition. */
function exportedNames(text: string): Set<string> {
  return new Set(
    text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(/[{ ]/)[0]),
  );
}

function missing(queried: Set<string>, exported: Set<string>): string[] {
  return [...queried].filter((n) => !exported.has(n)).sort();
}

Deno.test("dashboard: covers the issue's metrics, and each is exported by the agent's /metrics", async () => {
  const d = dashboard();
  assert.equal(d.uid, "twill-overview");
  const queried = queriedNames();
  for (
    const want of [
      "twill_lease_events_total",
      "twill_lease_to_kernel_seconds_bucket",
      "twill_reconcile_repairs_total",
      "twill_store_commit_seconds_bucket",
      "twill_store_leader_changes_total",
      "twill_peer_rtt_seconds",
      "twill_store_watches",
    ]
  ) assert.ok(queried.has(want), `the dashboard shows ${want}`);
  const h = healthHandler(new AgentState(), {
    now: () => 0,
    storeThresholdMs: 1,
    reconcileStuckMs: 1,
    storeStatus: () => ({ role: "leader", term: 1, commitIndex: 1, appliedIndex: 1 }),
  });
  const text = await (await h(new Request("http://x/metrics"))).text();
  assert.deepEqual(missing(queried, exportedNames(text)), []);
});

Deno.test("dashboard: a real agent with its embedded store exports every queried metric", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twa-db-" });
  const topo = new Topology("twa-db", 1, dir);
  const agent = { stop: (_?: Deno.Signal) => Promise.resolve(0), log: () => "" };
  try {
    await topo.create();
    await Deno.writeTextFile(
      `${dir}/net-conf.json`,
      '{"Network":"10.52.0.0/16","Backend":{"Type":"vxlan"}}',
    );
    Object.assign(
      agent,
      startAgent(topo, 1, [], {
        kind: "main-embedded",
        token: "twa-db-token",
        role: "init",
        netConf: `${dir}/net-conf.json`,
      }),
    );
    await waitFor(
      "the agent's /readyz",
      async () => (await httpStatus(topo.node(1), "/readyz")) === 200,
      30_000,
    ).catch((e) => {
      throw new Error(`${e.message}\n${agent.log()}`);
    });
    const text = await httpBody(topo.node(1), "/metrics");
    assert.deepEqual(missing(queriedNames(), exportedNames(text)), []);
    assert.match(text, /^twill_store_commit_seconds_count [1-9]\d*$/m, "the lease was committed");
    assert.match(text, /^twill_store_watches [1-9]\d*$/m, "the agent's lease watch is open");
  } finally {
    await agent.stop("SIGKILL");
    await topo.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("manifest: every DaemonSet's pods carry the Prometheus scrape annotations for :9099/metrics", () => {
  const text = Deno.readTextFileSync(join(ROOT, "deploy", "kube-twill.yaml"));
  // deno-lint-ignore no-explicit-any
  const sets = parseAllDocuments(text).map((d) => d.toJS() as any).filter((d) =>
    d?.kind === "DaemonSet"
  );
  assert.equal(sets.length, 2);
  for (const ds of sets) {
    assert.deepEqual(ds.spec.template.metadata.annotations, {
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "9099",
      "prometheus.io/path": "/metrics",
    }, ds.metadata.name);
  }
});
