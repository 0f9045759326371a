import assert from "node:assert/strict";
import { HeartbeatRtt, PEER_RTT, Registry } from "../lib/metrics.ts";

Deno.test("metrics: names are checked where they are declared", () => {
  const r = new Registry();
  assert.throws(() => r.counter("twill_events", "x"), /must end in _total/);
  assert.throws(() => r.histogram("twill_latency", "x", [1]), /must end in _seconds/);
  assert.throws(() => r.gauge("flannel_x", "x"), /not twill_/);
  r.gauge("twill_x", "x");
  assert.throws(() => r.gauge("twill_x", "x"), /declared twice/);
});

Deno.test("metrics: text exposition 0.0.4 of counters, gauges and cumulative histograms", () => {
  const r = new Registry();
  const c = r.counter("twill_things_total", "Things");
  const g = r.gauge("twill_level", "Level");
  const h = r.histogram("twill_wait_seconds", "Waits", [0.1, 1]);
  c.inc({ type: "added" });
  c.inc({ type: "added" }, 2);
  c.inc({ type: 'we"ird' });
  g.set(5);
  g.dec(undefined, 2);
  h.observe(0.05);
  h.observe(0.5);
  h.observe(3);
  h.observe(-1); // ignored: not a duration
  assert.throws(() => c.inc(undefined, -1), /negative/);
  assert.equal(
    r.render(),
    [
      "# HELP twill_things_total Things",
      "# TYPE twill_things_total counter",
      'twill_things_total{type="added"} 3',
      'twill_things_total{type="we\\"ird"} 1',
      "# HELP twill_level Level",
      "# TYPE twill_level gauge",
      "twill_level 3",
      "# HELP twill_wait_seconds Waits",
      "# TYPE twill_wait_seconds histogram",
      'twill_wait_seconds_bucket{le="0.1"} 1',
      'twill_wait_seconds_bucket{le="1"} 2',
      'twill_wait_seconds_bucket{le="+Inf"} 3',
      "twill_wait_seconds_sum 3.55",
      "twill_wait_seconds_count 3",
      "",
    ].join("\n"),
  );
});

Deno.test("metrics: an unused metric still renders (a zero sample), and label sets are bounded", () => {
  const r = new Registry();
  const c = r.counter("twill_n_total", "N");
  const h = r.histogram("twill_d_seconds", "D", [1]);
  assert.match(r.render(), /^twill_n_total 0$/m);
  assert.match(r.render(), /^twill_d_seconds_count 0$/m);
  for (let i = 0; i < 1000; i++) c.inc({ peer: String(i) });
  assert.equal(r.render().split("\n").filter((l) => l.startsWith("twill_n_total{")).length, 256);
  assert.equal(h.count(), 0);
});

Deno.test("metrics: heartbeat round trip per peer, from the heartbeat sent to its response", () => {
  let t = 1000;
  const rtt = new HeartbeatRtt(() => t);
  rtt.sending([{ type: "MsgHeartbeat", to: 7 }, { type: "MsgApp", to: 8 }]);
  t += 3;
  rtt.sending([{ type: "MsgHeartbeat", to: 7 }]); // still outstanding: the first one counts
  t += 2;
  rtt.received(8, [{ type: "MsgHeartbeatResp" }]); // nothing was sent to 8
  rtt.received(7, [{ type: "MsgAppResp" }, { type: "MsgHeartbeatResp" }]);
  assert.equal(PEER_RTT.get({ peer: "7" }), 0.005);
  assert.equal(PEER_RTT.get({ peer: "8" }), 0);
});
