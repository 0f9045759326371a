// Masquerade and forward rules in an nftables table of twill's own (`ip twill`), with Flannel's
// semantics: pod↔pod never NATed; outside → local pods keep the client address; pod → outside
// masqueraded (fully random, multicast excepted); host → remote pods masqueraded. The whole table
// is replaced in one `nft -f` transaction, so rules of a previous subnet never linger.
import { runCommand } from "./ip_batch.ts";

export const TABLE = "twill";
/** The rules in one family's table as rendered here: what ruleCount() reads of an intact table. */
export const MASQ_RULES = 6;

export function renderMasqRuleset(network: string, ownSubnet: string): string {
  return renderFamily("ip", "224.0.0.0/4", network, ownSubnet);
}

/** The IPv6 counterpart (table ip6 twill), multicast being ff00::/8. */
export function renderMasqRuleset6(network: string, ownSubnet: string): string {
  return renderFamily("ip6", "ff00::/8", network, ownSubnet);
}

function renderFamily(
  fam: "ip" | "ip6",
  multicast: string,
  network: string,
  ownSubnet: string,
): string {
  return `table ${fam} ${TABLE} {}
delete table ${fam} ${TABLE}
table ${fam} ${TABLE} {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ${fam} saddr ${network} ${fam} daddr ${network} return
    ${fam} saddr != ${network} ${fam} daddr ${ownSubnet} return
    ${fam} saddr ${network} ${fam} daddr != ${multicast} masquerade fully-random
    ${fam} saddr != ${network} ${fam} daddr ${network} masquerade fully-random
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ${fam} saddr ${network} accept
    ${fam} daddr ${network} accept
  }
}
`;
}

/** Applies a ruleset file text atomically. Throws with nft's message on failure. */
export async function applyRuleset(text: string): Promise<void> {
  const r = await runCommand("nft", ["-f", "-"], text);
  if (r.code !== 0) throw new Error(`nft -f failed: ${r.stderr.trim()}`);
}

/** The rule count of one family's table (for reconcile: a flushed table is re-applied). */
export async function ruleCount(fam: "ip" | "ip6" = "ip"): Promise<number> {
  const r = await runCommand("nft", ["-j", "list", "table", fam, TABLE]);
  if (r.code !== 0) return -1;
  const j = JSON.parse(r.stdout) as { nftables: Record<string, unknown>[] };
  return j.nftables.filter((o) => "rule" in o).length;
}
