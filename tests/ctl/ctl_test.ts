// `twill ctl` against a running member: status as a table and as JSON, config set/get, key
// commands, leases, the trust verbs (join-token, rotate-join-token, remove-node) with the data dir
// as the only source of CA and credential, and exit 3 with etcd's text when the cluster refuses.
import assert from "node:assert/strict";
import { join } from "node:path";
import { MAIN, TOKEN, withCluster } from "../store/process_cluster.ts";
import { createCredential } from "../../lib/pki/credential.ts";
import { subnetOfKey } from "../../lib/ctl/commands.ts";
import { table } from "../../lib/ctl/table.ts";
import { VERSION } from "../../lib/version.ts";

/** The data dir ctl reads its CA and credential from (the --init member's). */
let dataDir = "";

async function ctl(
  server: string,
  ...args: string[]
): Promise<{ code: number; out: string; err: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "ctl",
      "--server",
      server,
      "--data-dir",
      dataDir,
      "--healthz",
      "127.0.7.47:1",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: o.code, out: d.decode(o.stdout), err: d.decode(o.stderr) };
}

Deno.test("subnet keys read back as CIDRs and tables line up", () => {
  assert.equal(subnetOfKey("/coreos.com/network/subnets/10.5.52.0-24"), "10.5.52.0/24");
  assert.equal(subnetOfKey("/p/subnets/10.5.52.0-24&fd00::-64"), "10.5.52.0/24,fd00::/64");
  assert.equal(table(["A", "BB"], [["xyz", 1]]), "A    BB\nxyz  1");
});

Deno.test({
  name: "twill ctl: status, members, config, get/put/del, leases, wrong token",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster({ base: 45, size: 1 }, async (c) => {
      await c.start(1);
      const s = c.members[0].address;
      dataDir = c.members[0].dataDir;
      const st = await ctl(s, "status");
      assert.equal(st.code, 0, st.err);
      assert.match(st.out, /^cluster \d+ +leader 1 +term \d+ +commit \d+/);
      assert.match(st.out, /ID +NAME +ADDRESS +ROLE +VERSION +TERM +APPLIED +MATCH +LAST CONTACT/);
      assert.match(st.out, /1 +m1 +127\.0\.7\.46:8473 +leader/);
      assert.match(
        (await ctl(s, "members")).out,
        new RegExp(`leader +${VERSION.replace(/\./g, "\\.")} `),
      );
      assert.equal(JSON.parse((await ctl(s, "--json", "members")).out)[0].version, VERSION);
      const js = JSON.parse((await ctl(s, "--json", "status")).out);
      assert.equal(js.members[0].role, "leader");
      assert.equal(js.thisNode.role, "leader");
      assert.deepEqual(js.leases, []);
      assert.match(st.out, /no subnet leases under \/coreos\.com\/network\/subnets\//);

      const conf = join(c.root, "net-conf.json");
      await Deno.writeTextFile(conf, '{"Network":"10.5.0.0/16","Kv":{"Type":"vxlan"}}');
      assert.equal((await ctl(s, "config", "set", conf)).code, 0);
      assert.equal(JSON.parse((await ctl(s, "config", "get")).out).Network, "10.5.0.0/16");
      await Deno.writeTextFile(conf, '{"nope":1}');
      const bad = await ctl(s, "config", "set", conf);
      assert.equal(bad.code, 1);
      assert.match(bad.err, /not a Flannel network config/);

      assert.equal((await ctl(s, "put", "/k", "v1")).code, 0);
      assert.equal((await ctl(s, "get", "/k")).out.trim(), "v1");
      assert.equal((await ctl(s, "del", "/k")).out.trim(), "deleted 1");
      assert.equal((await ctl(s, "get", "/k")).code, 1);

      const lease = JSON.stringify({
        PublicIP: "10.0.0.7",
        BackendType: "vxlan",
        BackendData: { VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:ff" },
      });
      await ctl(s, "put", "/coreos.com/network/subnets/10.5.7.0-24", lease);
      const mine = JSON.stringify({
        PublicIP: "127.0.7.46",
        BackendType: "vxlan",
        BackendData: { VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:01" },
      });
      await ctl(s, "put", "/coreos.com/network/subnets/10.5.8.0-24", mine);
      const ls = await ctl(s, "leases");
      assert.match(ls.out, /10\.5\.7\.0\/24 +- +10\.0\.0\.7 +vxlan +aa:bb:cc:dd:ee:ff/);
      assert.match(
        ls.out,
        /10\.5\.8\.0\/24 +m1 +127\.0\.7\.46 +vxlan/,
        "a member's lease shows its name",
      );

      // status shows the members, the leases (the same table as `ctl leases`) and readiness.
      const st2 = await ctl(s, "status");
      assert.equal(st2.code, 0, st2.err);
      assert.match(st2.out, /1 +m1 +127\.0\.7\.46:8473 +leader/);
      assert.match(st2.out, /SUBNET +NODE +PUBLIC IP +BACKEND +VTEP MAC +EXPIRES IN/);
      assert.match(st2.out, /10\.5\.7\.0\/24 +- +10\.0\.0\.7 +vxlan +aa:bb:cc:dd:ee:ff/);
      assert.match(st2.out, /10\.5\.8\.0\/24 +m1 +127\.0\.7\.46 +vxlan/);
      assert.match(st2.out, /this node \(127\.0\.7\.46:8473\): leader, applied \d+, unknown/);
      const js2 = JSON.parse((await ctl(s, "--json", "status")).out);
      assert.deepEqual(
        js2.leases.map((l: { subnet: string; node: string; publicIp: string }) => [
          l.subnet,
          l.node,
          l.publicIp,
        ]),
        [["10.5.7.0/24", "", "10.0.0.7"], ["10.5.8.0/24", "m1", "127.0.7.46"]],
      );
      assert.match(js2.thisNode.ready, /^unknown/);

      await trustVerbs(s, c.members[0].dataDir);
    }, 20);
  },
});

/** The trust verbs and refusals, against a running member whose data dir is `dir`. */
async function trustVerbs(s: string, dir: string): Promise<void> {
  const kept = (await Deno.readTextFile(join(dir, "join-token"))).trim();
  assert.match(kept, new RegExp(`^K10[0-9a-f]{64}::${TOKEN}$`));
  const jt = await ctl(s, "join-token");
  assert.equal(jt.code, 0, jt.err);
  assert.equal(jt.out.trim(), kept, "the bare join token on stdout");
  const rot = await ctl(s, "rotate-join-token");
  assert.equal(rot.code, 0, rot.err);
  const fresh = rot.out.trim();
  assert.equal(fresh.slice(0, 69), kept.slice(0, 69), "same CA hash");
  assert.notEqual(fresh, kept);
  assert.equal((await ctl(s, "join-token")).out.trim(), fresh);

  const unknown = await ctl(s, "remove-node", "no-such-node");
  assert.equal(unknown.code, 1, unknown.err);
  assert.match(unknown.err, /no-such-node/);
  assert.equal((await ctl(s, "remove-node")).code, 2, "usage");

  // Nothing secret in status, whatever the output form.
  const admin = (await Deno.readTextFile(join(dir, "admin-credential"))).trim();
  const node = (await Deno.readTextFile(join(dir, "credential"))).trim();
  for (const form of [["status"], ["--json", "status"]]) {
    const out = (await ctl(s, ...form)).out;
    for (const secret of [admin, node, TOKEN, fresh.split("::")[1]]) {
      assert.ok(!out.includes(secret), `ctl ${form.join(" ")} shows no secret`);
    }
  }

  // A member's own credential may not write outside the network's leases: refused, exit 3.
  const denied = await ctl(s, "--token", node, "put", "/twill/join-secret", "mine");
  assert.equal(denied.code, 3);
  assert.equal(denied.err.trim(), "etcdserver: permission denied");
  const stranger = await ctl(s, "--token", createCredential(), "get", "/k");
  assert.equal(stranger.code, 3);
  assert.match(stranger.err, /etcdserver: /);
  const notCred = await ctl(s, "--token", "nope", "status");
  assert.equal(notCred.code, 2);
  assert.match(notCred.err, /--token is not a twill credential/);
  const noCa = await ctl(s, "--data-dir", join(dir, "nowhere"), "status");
  assert.equal(noCa.code, 2);
}
