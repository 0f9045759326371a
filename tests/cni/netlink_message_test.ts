// The netlink codec, byte for byte, without a kernel.
import assert from "node:assert/strict";
import {
  AF_BRIDGE,
  IFLA_BRPORT_MODE,
  IFLA_IFNAME,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MTU,
  IFLA_PROTINFO,
  NLA_F_NESTED,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  RTM_NEWLINK,
  RTM_SETLINK,
} from "../../lib/net/netlink/constants.ts";
import {
  attr,
  decodeAttrs,
  decodeError,
  decodeLink,
  decodeMessages,
  encodeAttrs,
  encodeMessage,
  ifaddrmsg,
  ifinfomsg,
  rtmsg,
} from "../../lib/net/netlink/message.ts";

import { masqBatch, masqRules } from "../../lib/net/netlink/nftables.ts";
import { parseCIDR } from "../../lib/net/cidr.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("attributes are length-prefixed, typed and padded to 4 bytes", () => {
  assert.equal(hex(encodeAttrs([attr.u32(IFLA_MTU, 1450)])), "08000400aa050000");
  // "cni0\0" is 5 bytes: length 9, padded to 12.
  assert.equal(hex(encodeAttrs([attr.str(IFLA_IFNAME, "cni0")])), "09000300636e693000000000");
  assert.equal(hex(encodeAttrs([attr.u8(IFLA_BRPORT_MODE, 1)])), "0500040001000000");
});

Deno.test("nested attributes carry NLA_F_NESTED and the length of their children", () => {
  const b = encodeAttrs([attr.nest(IFLA_LINKINFO, [attr.str(IFLA_INFO_KIND, "bridge")])]);
  const view = new DataView(b.buffer);
  assert.equal(view.getUint16(0, true), 4 + 12);
  assert.equal(view.getUint16(2, true), IFLA_LINKINFO | NLA_F_NESTED);
  const inner = decodeAttrs(b).get(IFLA_LINKINFO)!;
  assert.equal(new TextDecoder().decode(decodeAttrs(inner).get(IFLA_INFO_KIND)!), "bridge\0");
});

Deno.test("a message has nlmsghdr, the family header and attributes, with the total length", () => {
  const m = encodeMessage(
    RTM_NEWLINK,
    NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    7,
    ifinfomsg({ index: 3 }),
    [attr.u32(IFLA_MTU, 1500)],
  );
  assert.equal(m.length, 16 + 16 + 8);
  const v = new DataView(m.buffer);
  assert.equal(v.getUint32(0, true), 40);
  assert.equal(v.getUint16(4, true), RTM_NEWLINK);
  assert.equal(v.getUint16(6, true), 0x605);
  assert.equal(v.getUint32(8, true), 7);
  assert.equal(v.getInt32(16 + 4, true), 3);
  const [back] = decodeMessages(m);
  assert.equal(back.type, RTM_NEWLINK);
  assert.equal(back.seq, 7);
  assert.equal(back.body.length, 24);
});

Deno.test("hairpin is IFLA_PROTINFO/IFLA_BRPORT_MODE in an AF_BRIDGE setlink", () => {
  const m = encodeMessage(
    RTM_SETLINK,
    NLM_F_REQUEST,
    1,
    ifinfomsg({ family: AF_BRIDGE, index: 9 }),
    [
      attr.nest(IFLA_PROTINFO, [attr.u8(IFLA_BRPORT_MODE, 1)]),
    ],
  );
  assert.equal(m[16], AF_BRIDGE);
  assert.equal(hex(m.subarray(32)), "0c000c80" + "0500040001000000");
});

Deno.test("fixed headers: ifaddrmsg is 8 bytes, rtmsg 12", () => {
  assert.equal(hex(ifaddrmsg({ family: 2, prefixLen: 24, index: 5 })), "0218000005000000");
  assert.equal(
    hex(rtmsg({ family: 2, dstLen: 16, table: 254, protocol: 3, scope: 0, type: 1 })),
    "02100000fe030001" + "00000000",
  );
});

Deno.test("an NLMSG_ERROR decodes to errno and the kernel's extended-ack message", () => {
  // Body: -errno, the echoed request header (capped: no payload), then the ack TLVs.
  const tlvs = encodeAttrs([attr.str(1, "File exists here")]);
  const body = new Uint8Array(4 + 16 + tlvs.length);
  const v = new DataView(body.buffer);
  v.setInt32(0, -17, true); // EEXIST
  v.setUint32(4, 16, true);
  body.set(tlvs, 20);
  const frame = new Uint8Array(16 + body.length);
  const fv = new DataView(frame.buffer);
  fv.setUint32(0, frame.length, true);
  fv.setUint16(4, NLMSG_ERROR, true);
  fv.setUint16(6, NLM_F_ACK_TLVS | NLM_F_CAPPED, true);
  frame.set(body, 16);
  const [m] = decodeMessages(frame);
  assert.deepEqual(decodeError(m), { errno: 17, msg: "File exists here" });
});

Deno.test("a link message decodes name, MTU, MAC, master and bridge-port hairpin", () => {
  const mac = Uint8Array.from([0x02, 0, 0, 0, 0, 0x2a]);
  const msg = encodeMessage(RTM_NEWLINK, 0, 0, ifinfomsg({ index: 4, flags: 1 }), [
    attr.str(IFLA_IFNAME, "veth1"),
    attr.u32(IFLA_MTU, 1450),
    attr.bytes(1, mac),
    attr.u32(10, 2),
    attr.nest(IFLA_LINKINFO, [
      attr.str(IFLA_INFO_KIND, "veth"),
      attr.str(4, "bridge"),
      attr.nest(5, [attr.u8(IFLA_BRPORT_MODE, 1)]),
    ]),
  ]);
  const l = decodeLink(decodeMessages(msg)[0].body);
  assert.deepEqual(
    {
      index: l.index,
      name: l.name,
      mtu: l.mtu,
      mac: l.mac,
      master: l.master,
      kind: l.kind,
      hairpin: l.hairpin,
    },
    {
      index: 4,
      name: "veth1",
      mtu: 1450,
      mac: "02:00:00:00:00:2a",
      master: 2,
      kind: "veth",
      hairpin: true,
    },
  );
});

Deno.test("a truncated datagram is an error, not a silent partial parse", () => {
  const m = encodeMessage(RTM_NEWLINK, 0, 0, ifinfomsg());
  assert.throws(() => decodeMessages(m.subarray(0, m.length - 4)), /malformed netlink message/);
});

Deno.test("the masquerade table is one nfnetlink batch: begin, table reset, chain, rules, end", () => {
  const spec = {
    table: "t",
    chain: "postrouting",
    subnets: [parseCIDR("10.244.1.0/24")],
    keep: [parseCIDR("10.244.0.0/16"), parseCIDR("fd00::/56")],
  };
  // Per subnet: return for itself, each same-family network and multicast; then masquerade.
  assert.equal(masqRules(spec).length, 4);
  let seq = 100;
  const { datagram, lastSeq } = masqBatch(spec, () => ++seq);
  const msgs = decodeMessages(datagram);
  const types = msgs.map((m) => m.type);
  const nft = (t: number) => (10 << 8) | t;
  assert.deepEqual(types, [
    0x10,
    nft(0),
    nft(2),
    nft(0),
    nft(3),
    nft(6),
    nft(6),
    nft(6),
    nft(6),
    0x11,
  ]);
  // Batch markers carry the nf_tables subsystem as a big-endian resource id.
  assert.deepEqual([...msgs[0].body.subarray(0, 4)], [0, 0, 0, 10]);
  // Table and rule messages are for the inet family.
  assert.equal(msgs[1].body[0], 1);
  // Only the last rule asks for an ack, and that is the sequence number the caller waits for.
  assert.deepEqual(msgs.map((m) => (m.flags & NLM_F_ACK) !== 0), [
    false,
    false,
    false,
    false,
    false,
    false,
    false,
    false,
    true,
    false,
  ]);
  assert.equal(msgs[8].seq, lastSeq);
});
