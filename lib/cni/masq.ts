// Bridge masquerade for pods whose traffic the agent does not masquerade (FLANNEL_IPMASQ=false):
// one nftables table of twill's own in the node namespace (inet twill-cni-masq, chain
// postrouting), per pod subnet: traffic to the subnet itself, to the cluster networks or to
// multicast is left alone; everything else leaves with the node's address. Written through
// nf_tables netlink in one atomic batch: no nft binary, no child process.
import type { CIDR } from "../net/cidr.ts";
import { applyMasqTable } from "../net/netlink/nftables.ts";
import { NetlinkError } from "../net/netlink/socket.ts";
import { CniError, ERR } from "./errors.ts";

export const MASQ_TABLE = "twill-cni-masq";
export const MASQ_CHAIN = "postrouting";

export function applyMasq(subnets: CIDR[], networks: CIDR[]): void {
  try {
    applyMasqTable({ table: MASQ_TABLE, chain: MASQ_CHAIN, subnets, keep: networks });
  } catch (e) {
    const why = e instanceof NetlinkError ? e.message : String(e);
    throw new CniError(
      ERR.kernel,
      `cannot set up pod masquerade in nftables table inet ${MASQ_TABLE}: ${why}; ` +
        `the kernel needs nf_tables with nat and masq support`,
    );
  }
}
