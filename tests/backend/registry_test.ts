// The backend registry: net-conf's Backend fields are parsed by the registered module, unknown
// types get Flannel's message, and each module owns its lease BackendData and persisted state.
import assert from "node:assert/strict";
import { backendConfigParser } from "../../lib/backend/registry.ts";
import { encodeVxlanData, loadVtepMac, vxlanData } from "../../lib/backend/vxlan.ts";
import { parseNetConfig } from "../../lib/subnet/config.ts";
import { decodeLeaseAttrs, encodeLeaseAttrs } from "../../lib/subnet/lease.ts";

Deno.test("registry: each registered type parses its own Backend fields", () => {
  assert.ok(backendConfigParser("vxlan"));
  assert.ok(backendConfigParser("host-gw"));
  assert.equal(backendConfigParser("udp"), undefined);
  const c = parseNetConfig(
    '{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":7,"MTU":1400}}',
    backendConfigParser,
  );
  assert.deepEqual(c.backend, {
    type: "vxlan",
    vni: 7,
    port: 8472,
    mtu: 1400,
    directRouting: false,
  });
  assert.throws(
    () =>
      parseNetConfig(
        '{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":-1}}',
        backendConfigParser,
      ),
    /Backend.VNI must be a non-negative integer/,
  );
});

Deno.test("vxlan: lease BackendData encodes as Flannel's and decodes back", () => {
  const attrs = {
    publicIP: "10.0.0.1",
    publicIPv6: null,
    backendType: "vxlan",
    backendData: encodeVxlanData({ vni: 1, vtepMAC: "aa:bb:cc:dd:ee:01" }),
  };
  const text = encodeLeaseAttrs(attrs);
  assert.equal(
    text,
    '{"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:01"}}',
  );
  assert.deepEqual(vxlanData(decodeLeaseAttrs(text)), { vni: 1, vtepMAC: "aa:bb:cc:dd:ee:01" });
  assert.equal(vxlanData(decodeLeaseAttrs(text), true), null);
});

Deno.test("vxlan: the VTEP MAC is chosen once and kept across restarts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twill-vtep-" });
  try {
    const mac = await loadVtepMac(`${dir}/data`);
    assert.match(mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    assert.equal(await loadVtepMac(`${dir}/data`), mac);
    assert.equal(await Deno.readTextFile(`${dir}/data/vtep-mac`), mac + "\n");
    assert.notEqual(await loadVtepMac(`${dir}/data`, "vtep-mac-v6"), undefined);
    const names = [...Deno.readDirSync(`${dir}/data`)].map((e) => e.name).sort();
    assert.deepEqual(names, ["vtep-mac", "vtep-mac-v6"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
