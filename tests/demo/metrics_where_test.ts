import assert from "node:assert/strict";
import { renderMetricsWhere } from "../../scripts/demo.ts";

Deno.test("demo: the summary says where each node's /metrics is", () => {
  const node = (name: string, ns: string) => ({
    name,
    ns,
    address: "10.99.0.1",
    subnet: "10.5.1.0/24",
    vtepMac: "0a:00:00:00:00:01",
    role: "leader",
  });
  const text = renderMetricsWhere({
    ok: true,
    nodes: [node("n1", "twd-n1"), node("n2", "twd-n2")],
    pods: [],
    matrix: {},
    steps: [],
  });
  assert.equal(
    text,
    "  n1: ip netns exec twd-n1 curl -s http://127.0.0.1:9099/metrics\n" +
      "  n2: ip netns exec twd-n2 curl -s http://127.0.0.1:9099/metrics",
  );
});
