// nf_tables over netlink, just enough for one thing: a NAT table of our own with a masquerade
// chain, replaced atomically in one nfnetlink batch (the kernel applies all of it or none). The
// encoding is pure; apply() sends it on a NETLINK_NETFILTER socket. Numbers from
// linux/netfilter/nf_tables.h and nfnetlink.h; nf_tables integers are big-endian.
import { type CIDR, ipToBytes } from "../cidr.ts";
import { NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST } from "./constants.ts";
import { type Attr, attr, encodeMessage } from "./message.ts";
import { NetlinkSocket } from "./socket.ts";

export const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_DELTABLE = 2;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_NEWRULE = 6;
const NLM_F_APPEND = 0x800;

export const NFPROTO_INET = 1;
const NFPROTO_IPV4 = 2;
const NFPROTO_IPV6 = 10;

const NFTA_TABLE_NAME = 1;
const NFTA_CHAIN_TABLE = 1;
const NFTA_CHAIN_NAME = 3;
const NFTA_CHAIN_HOOK = 4;
const NFTA_CHAIN_POLICY = 5;
const NFTA_CHAIN_TYPE = 7;
const NFTA_HOOK_HOOKNUM = 1;
const NFTA_HOOK_PRIORITY = 2;
const NF_INET_POST_ROUTING = 4;
const NF_IP_PRI_NAT_SRC = 100;
const NF_ACCEPT = 1;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_EXPRESSIONS = 4;
const NFTA_LIST_ELEM = 1;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
const NFTA_META_DREG = 1;
const NFTA_META_KEY = 2;
const NFT_META_NFPROTO = 15;
const NFTA_PAYLOAD_DREG = 1;
const NFTA_PAYLOAD_BASE = 2;
const NFTA_PAYLOAD_OFFSET = 3;
const NFTA_PAYLOAD_LEN = 4;
const NFT_PAYLOAD_NETWORK_HEADER = 1;
const NFTA_BITWISE_SREG = 1;
const NFTA_BITWISE_DREG = 2;
const NFTA_BITWISE_LEN = 3;
const NFTA_BITWISE_MASK = 4;
const NFTA_BITWISE_XOR = 5;
const NFTA_CMP_SREG = 1;
const NFTA_CMP_OP = 2;
const NFTA_CMP_DATA = 3;
const NFT_CMP_EQ = 0;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_IMMEDIATE_DREG = 1;
const NFTA_IMMEDIATE_DATA = 2;
const NFT_REG_VERDICT = 0;
const NFT_REG_1 = 1;
const NFT_RETURN = -5;

function be32(type: number, v: number): Attr {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, false);
  return { type, value: b };
}

/** struct nfgenmsg: family, version 0, resource id (big-endian). */
function nfgenmsg(family: number, resId = 0): Uint8Array {
  return Uint8Array.of(family, 0, (resId >> 8) & 0xff, resId & 0xff);
}

function nftType(msg: number): number {
  return (NFNL_SUBSYS_NFTABLES << 8) | msg;
}

function expr(name: string, data: Attr[]): Attr {
  const inner = [attr.str(NFTA_EXPR_NAME, name)];
  if (data.length) inner.push(attr.nest(NFTA_EXPR_DATA, data));
  return attr.nest(NFTA_LIST_ELEM, inner);
}

function dataValue(type: number, bytes: Uint8Array): Attr {
  return attr.nest(type, [attr.bytes(NFTA_DATA_VALUE, bytes)]);
}

/** `meta nfproto <family>` */
function matchFamily(family: 4 | 6): Attr[] {
  return [
    expr("meta", [be32(NFTA_META_DREG, NFT_REG_1), be32(NFTA_META_KEY, NFT_META_NFPROTO)]),
    expr("cmp", [
      be32(NFTA_CMP_SREG, NFT_REG_1),
      be32(NFTA_CMP_OP, NFT_CMP_EQ),
      dataValue(NFTA_CMP_DATA, Uint8Array.of(family === 4 ? NFPROTO_IPV4 : NFPROTO_IPV6)),
    ]),
  ];
}

/** `ip saddr <cidr>` / `ip daddr <cidr>` (and the ip6 forms): load, mask, compare. */
function matchAddress(which: "saddr" | "daddr", c: CIDR): Attr[] {
  const v4 = c.ip.family === 4;
  const len = v4 ? 4 : 16;
  const offset = v4 ? (which === "saddr" ? 12 : 16) : (which === "saddr" ? 8 : 24);
  if (c.prefix === 0) return [];
  const out = [
    expr("payload", [
      be32(NFTA_PAYLOAD_DREG, NFT_REG_1),
      be32(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER),
      be32(NFTA_PAYLOAD_OFFSET, offset),
      be32(NFTA_PAYLOAD_LEN, len),
    ]),
  ];
  if (c.prefix < len * 8) {
    const mask = new Uint8Array(len);
    for (let i = 0; i < c.prefix; i++) mask[i >> 3] |= 0x80 >> (i & 7);
    out.push(expr("bitwise", [
      be32(NFTA_BITWISE_SREG, NFT_REG_1),
      be32(NFTA_BITWISE_DREG, NFT_REG_1),
      be32(NFTA_BITWISE_LEN, len),
      dataValue(NFTA_BITWISE_MASK, mask),
      dataValue(NFTA_BITWISE_XOR, new Uint8Array(len)),
    ]));
  }
  out.push(expr("cmp", [
    be32(NFTA_CMP_SREG, NFT_REG_1),
    be32(NFTA_CMP_OP, NFT_CMP_EQ),
    dataValue(NFTA_CMP_DATA, ipToBytes(c.ip)),
  ]));
  return out;
}

const RETURN = expr("immediate", [
  be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT),
  attr.nest(NFTA_IMMEDIATE_DATA, [
    attr.nest(NFTA_DATA_VERDICT, [be32(NFTA_VERDICT_CODE, NFT_RETURN)]),
  ]),
]);
const MASQUERADE = expr("masq", []);

export interface MasqSpec {
  table: string;
  chain: string;
  /** Pod subnets whose traffic leaves masqueraded... */
  subnets: CIDR[];
  /** ...unless it goes to one of these (the cluster networks) or to multicast. */
  keep: CIDR[];
}

/** The rules of the chain, each a list of expressions, in order. */
export function masqRules(spec: MasqSpec): Attr[][] {
  const rules: Attr[][] = [];
  for (const s of spec.subnets) {
    const fam = s.ip.family;
    const multicast: CIDR = fam === 4
      ? { ip: { family: 4, value: 0xe0000000n }, prefix: 4 }
      : { ip: { family: 6, value: 0xffn << 120n }, prefix: 8 };
    const exempt = [s, ...spec.keep.filter((k) => k.ip.family === fam), multicast];
    for (const d of exempt) {
      rules.push([
        ...matchFamily(fam),
        ...matchAddress("saddr", s),
        ...matchAddress("daddr", d),
        RETURN,
      ]);
    }
    rules.push([...matchFamily(fam), ...matchAddress("saddr", s), MASQUERADE]);
  }
  return rules;
}

/**
 * One batch that (re)creates the table from nothing: create it (a no-op when it exists), delete
 * it with everything in it, create it again with the nat chain and the rules. Returns the
 * datagram and the sequence number of its last message, which asks for the ack.
 */
export function masqBatch(
  spec: MasqSpec,
  nextSeq: () => number,
): { datagram: Uint8Array; lastSeq: number } {
  const msgs: Uint8Array[] = [];
  const fam = nfgenmsg(NFPROTO_INET);
  const tableName = [attr.str(NFTA_TABLE_NAME, spec.table)];
  msgs.push(
    encodeMessage(
      NFNL_MSG_BATCH_BEGIN,
      NLM_F_REQUEST,
      nextSeq(),
      nfgenmsg(0, NFNL_SUBSYS_NFTABLES),
    ),
  );
  const newTable = () =>
    encodeMessage(
      nftType(NFT_MSG_NEWTABLE),
      NLM_F_REQUEST | NLM_F_CREATE,
      nextSeq(),
      fam,
      tableName,
    );
  msgs.push(newTable());
  msgs.push(encodeMessage(nftType(NFT_MSG_DELTABLE), NLM_F_REQUEST, nextSeq(), fam, tableName));
  msgs.push(newTable());
  msgs.push(encodeMessage(nftType(NFT_MSG_NEWCHAIN), NLM_F_REQUEST | NLM_F_CREATE, nextSeq(), fam, [
    attr.str(NFTA_CHAIN_TABLE, spec.table),
    attr.str(NFTA_CHAIN_NAME, spec.chain),
    attr.nest(NFTA_CHAIN_HOOK, [
      be32(NFTA_HOOK_HOOKNUM, NF_INET_POST_ROUTING),
      be32(NFTA_HOOK_PRIORITY, NF_IP_PRI_NAT_SRC),
    ]),
    be32(NFTA_CHAIN_POLICY, NF_ACCEPT),
    attr.str(NFTA_CHAIN_TYPE, "nat"),
  ]));
  let lastSeq = 0;
  const rules = masqRules(spec);
  for (const [i, exprs] of rules.entries()) {
    lastSeq = nextSeq();
    const flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND |
      (i === rules.length - 1 ? NLM_F_ACK : 0);
    msgs.push(encodeMessage(nftType(NFT_MSG_NEWRULE), flags, lastSeq, fam, [
      attr.str(NFTA_RULE_TABLE, spec.table),
      attr.str(NFTA_RULE_CHAIN, spec.chain),
      attr.nest(NFTA_RULE_EXPRESSIONS, exprs),
    ]));
  }
  if (rules.length === 0) {
    // Only the empty table: have the last table message acknowledged instead.
    const last = msgs[msgs.length - 1];
    new DataView(last.buffer).setUint16(6, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, true);
    lastSeq = new DataView(last.buffer).getUint32(8, true);
  }
  msgs.push(
    encodeMessage(NFNL_MSG_BATCH_END, NLM_F_REQUEST, nextSeq(), nfgenmsg(0, NFNL_SUBSYS_NFTABLES)),
  );
  const total = msgs.reduce((n, m) => n + m.length, 0);
  const datagram = new Uint8Array(total);
  let o = 0;
  for (const m of msgs) {
    datagram.set(m, o);
    o += m.length;
  }
  return { datagram, lastSeq };
}

/** Replaces the table in the calling thread's network namespace, atomically. */
export function applyMasqTable(spec: MasqSpec): void {
  const s = NetlinkSocket.open(NETLINK_NETFILTER);
  try {
    const { datagram, lastSeq } = masqBatch(spec, () => s.nextSeq());
    s.transact(`replace nftables table inet ${spec.table}`, datagram, lastSeq);
  } finally {
    s.close();
  }
}
