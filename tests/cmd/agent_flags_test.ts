// `twill agent` flags: Flannel's names, FLANNELD_<FLAG> fallback, the command line winning, and
// one clear line for each mistake.
import assert from "node:assert/strict";
import { AGENT_FLAGS, agentUsage, envName, parseAgentFlags } from "../../cmd/agent.ts";

Deno.test("defaults: Flannel's paths and ports, twill's store settings", () => {
  const f = parseAgentFlags([], {});
  assert.equal(f.dataDir, "/var/lib/twill");
  assert.equal(f.listen, "0.0.0.0:8473");
  assert.equal(f.voters, 3);
  assert.equal(f.healthzPort, 9099);
  assert.equal(f.healthzIp, "0.0.0.0");
  assert.equal(f.subnetFile, "/run/flannel/subnet.env");
  assert.equal(f.etcdPrefix, "/coreos.com/network");
  assert.equal(f.netConfigPath, "/etc/kube-flannel/net-conf.json");
  assert.equal(f.deadVoterTimeoutMs, 30_000);
  assert.equal(f.subnetLeaseTtlMs, 24 * 3600 * 1000);
  assert.equal(f.subnetLeaseRenewMarginMinutes, 60);
  assert.equal(f.init, false);
  assert.equal(f.storeOnly, false);
  assert.equal(f.autoCompactionRetention, 10_000);
  assert.equal(
    parseAgentFlags(["--auto-compaction-retention", "0"], {}).autoCompactionRetention,
    0,
  );
  assert.ok(!agentUsage().includes("auto-compaction-retention"), "a hidden flag");
  // The election timeout has one default, this flag's: 7 ticks of 100 ms.
  assert.equal(f.tickMs, 100);
  assert.equal(f.electionTicks, 7);
});

Deno.test("FLANNELD_<FLAG> fills a flag and the command line wins", () => {
  assert.equal(envName("ip-masq"), "FLANNELD_IP_MASQ");
  const env = {
    FLANNELD_IP_MASQ: "true",
    FLANNELD_IFACE: "eth1,eth2",
    FLANNELD_PUBLIC_IP: "10.0.0.9",
    FLANNELD_VOTERS: "5",
    FLANNELD_ETCD_PREFIX: "/x/network",
    FLANNELD_SUBNET_LEASE_TTL: "1h",
  };
  const f = parseAgentFlags(["--public-ip", "10.0.0.1", "--voters", "1"], env);
  assert.equal(f.ipMasq, true);
  assert.deepEqual(f.iface, ["eth1", "eth2"]);
  assert.equal(f.publicIp, "10.0.0.1");
  assert.equal(f.voters, 1);
  assert.equal(f.etcdPrefix, "/x/network");
  assert.equal(f.subnetLeaseTtlMs, 3_600_000);
  assert.equal(parseAgentFlags(["--ip-masq=false"], env).ipMasq, false);
});

Deno.test("--iface repeats and --join takes a list", () => {
  const f = parseAgentFlags([
    "--iface",
    "eth0",
    "--iface",
    "10.0.0.2",
    "--join",
    "a:1,b:2",
    "--token",
    "t",
  ], {});
  assert.deepEqual(f.iface, ["eth0", "10.0.0.2"]);
  assert.deepEqual(f.join, ["a:1", "b:2"]);
});

Deno.test("mistakes are refused with one line saying what to do", () => {
  const cases: [string[], RegExp][] = [
    [["--voters", "9"], /--voters must be a whole number from 1 to 7/],
    [["--init", "--join", "a:1"], /--init and --join exclude each other/],
    [["--token", "a", "--token-file", "f"], /either --token or --token-file/],
    [["--listen", "nowhere"], /is not HOST:PORT/],
    [["--dead-voter-timeout", "soon"], /--dead-voter-timeout: "soon" is not a duration/],
    [["--bogus"], /Unknown option '--bogus'.*twill agent --help/],
    [["--etcd-endpoints", "http://e:2379", "--init"], /no embedded store/],
  ];
  for (const [args, re] of cases) {
    assert.throws(
      () => parseAgentFlags(args, {}),
      (e: Error) => re.test(e.message) && !e.message.includes("\n"),
    );
  }
  assert.throws(
    () => parseAgentFlags([], { FLANNELD_IP_MASQ: "maybe" }),
    /FLANNELD_IP_MASQ="maybe" is not a boolean/,
  );
});

Deno.test("the usage lists every visible flag", () => {
  const text = agentUsage();
  for (const f of AGENT_FLAGS) if (!f.hidden) assert.ok(text.includes(`--${f.name}`), f.name);
});
