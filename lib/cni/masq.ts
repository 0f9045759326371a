// Bridge masquerade for pods whose traffic the agent does not masquerade (FLANNEL_IPMASQ=false):
// one nftables table of twill's own in the node namespace, one rule per pod subnet: traffic from
// the subnet to anywhere but the cluster networks and multicast leaves with the node's address.
// The rules text is pure; applying it is the one place the CNI path runs a child process (nft),
// and only when masquerade is on, which the default kube-flannel setup never asks for.
import { type CIDR, formatCIDR } from "../net/cidr.ts";
import { CniError, ERR } from "./errors.ts";

export const MASQ_TABLE = "twill-cni-masq";

export function masqRules(subnets: CIDR[], networks: CIDR[]): string {
  const lines = [
    `table inet ${MASQ_TABLE} {}`,
    `flush table inet ${MASQ_TABLE}`,
    `table inet ${MASQ_TABLE} {`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
  ];
  for (const s of subnets) {
    const fam = s.ip.family === 4 ? "ip" : "ip6";
    const mc = s.ip.family === 4 ? "224.0.0.0/4" : "ff00::/8";
    const keep = [s, ...networks.filter((n) => n.ip.family === s.ip.family)].map(formatCIDR);
    lines.push(
      `    ${fam} saddr ${formatCIDR(s)} ${fam} daddr != { ${
        [...keep, mc].join(", ")
      } } masquerade`,
    );
  }
  lines.push("  }", "}", "");
  return lines.join("\n");
}

/** Loads the rules (idempotent: the table is flushed and refilled in one transaction). */
export async function applyMasq(subnets: CIDR[], networks: CIDR[]): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    const child = new Deno.Command("nft", {
      args: ["-f", "-"],
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(masqRules(subnets, networks)));
    await w.close();
    out = await child.output();
  } catch (e) {
    throw new CniError(
      ERR.io,
      `cannot run nft to set up pod masquerade (${(e as Error).message}); install nftables`,
    );
  }
  if (!out.success) {
    throw new CniError(
      ERR.io,
      `nft refused the masquerade rules for table ${MASQ_TABLE}: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
}
