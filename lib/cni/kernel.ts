// The kernel side of an attachment, through rtnetlink: the node's bridge with its gateway
// addresses, a veth pair whose host end is a bridge port and whose other end is CNI_IFNAME in the
// pod's namespace, the pod's addresses and routes. A thin adapter: what to build comes from the
// Plan; this file only makes it so, reads it back, and undoes it.
import { type CIDR, cidrEqual, type IP, ipEqual } from "../net/cidr.ts";
import { EADDRNOTAVAIL, EEXIST, ENODEV, ESRCH } from "../net/netlink/constants.ts";
import * as rtnl from "../net/netlink/rtnl.ts";
import { NetlinkError, type NetlinkSocket } from "../net/netlink/socket.ts";
import type { Netns } from "../net/netns.ts";
import { CniError, ERR } from "./errors.ts";
import { hostVethName, type Plan, routeGateway } from "./plan.ts";

export interface Wiring {
  bridge: rtnl.Link;
  host: rtnl.Link;
  pod: rtnl.Link;
}

function kernelError(e: unknown, doing: string): CniError {
  if (e instanceof CniError) return e;
  return new CniError(ERR.kernel, `${doing}: ${(e as Error).message}`);
}

function ignoreGone(e: unknown): void {
  if (
    e instanceof NetlinkError &&
    (e.errno === ENODEV || e.errno === ESRCH || e.errno === EADDRNOTAVAIL)
  ) {
    return;
  }
  throw e;
}

/** Makes sure the bridge exists, is up and holds the gateway addresses. */
export function ensureBridge(
  s: NetlinkSocket,
  plan: Plan,
): { bridge: rtnl.Link; created: boolean } {
  let created = false;
  let br = rtnl.getLink(s, plan.bridge);
  if (!br) {
    try {
      rtnl.createBridge(s, plan.bridge, plan.mtu);
      created = true;
    } catch (e) {
      if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
    }
    br = rtnl.getLink(s, plan.bridge);
    if (!br) throw new CniError(ERR.kernel, `bridge ${plan.bridge} vanished right after creation`);
    // Pin the random MAC the kernel chose: otherwise the bridge takes the lowest port MAC and
    // changes it as pods come and go, leaving stale gateway entries in the pods' ARP caches.
    if (created && br.mac) rtnl.setLink(s, br.index, { mac: br.mac });
  }
  if (br.kind !== "bridge") {
    throw new CniError(
      ERR.invalidConfig,
      `${plan.bridge} exists on this node but is a ${br.kind ?? "plain"} device, not a bridge; ` +
        `remove it or set delegate.bridge to another name`,
    );
  }
  if (!(br.flags & 1)) rtnl.setLink(s, br.index, { up: true });
  if (plan.isGateway) {
    // Adding what is already there is refused with EEXIST: cheaper than listing first.
    for (const r of plan.ranges) {
      const want: CIDR = { ip: r.gateway, prefix: r.subnet.prefix };
      try {
        rtnl.addAddress(s, br.index, want, { noDad: want.ip.family === 6 });
      } catch (e) {
        if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
      }
    }
    enableForwarding(plan);
  }
  return { bridge: br, created };
}

/** A gateway bridge routes: net.ipv4.ip_forward (and IPv6 forwarding) in the node namespace. */
function enableForwarding(plan: Plan): void {
  const paths: string[] = [];
  if (plan.ranges.some((r) => r.gateway.family === 4)) paths.push("/proc/sys/net/ipv4/ip_forward");
  if (plan.ranges.some((r) => r.gateway.family === 6)) {
    paths.push("/proc/sys/net/ipv6/conf/all/forwarding");
  }
  for (const p of paths) {
    try {
      if (Deno.readTextFileSync(p).trim() !== "1") Deno.writeTextFileSync(p, "1");
    } catch (e) {
      throw new CniError(ERR.io, `cannot enable forwarding through ${p}: ${(e as Error).message}`);
    }
  }
}

/**
 * Creates the veth pair and configures the pod end. On failure deletes what it made (deleting the
 * host end removes the pod end with it) and throws.
 */
export function attach(
  s: NetlinkSocket,
  pod: Netns,
  plan: Plan,
  bridge: rtnl.Link,
  hostName: string,
  ifname: string,
  addresses: CIDR[],
): Wiring {
  // A leftover from an interrupted ADD of this same attachment: start clean.
  const stale = rtnl.getLink(s, hostName);
  if (stale) rtnl.deleteLink(s, stale.index);
  const podSock = pod.socket();
  let host: rtnl.Link | null = null;
  try {
    try {
      rtnl.createVeth(s, {
        name: hostName,
        peerName: ifname,
        peerNetnsFd: pod.fd,
        mtu: plan.mtu,
        master: bridge.index,
        up: true,
      });
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === EEXIST) {
        throw new CniError(
          ERR.kernel,
          `cannot create ${ifname} in ${pod.path}: an interface of that name already exists there`,
        );
      }
      throw e;
    }
    host = rtnl.getLink(s, hostName);
    if (!host) throw new CniError(ERR.kernel, `veth ${hostName} vanished right after creation`);
    if (plan.hairpin) rtnl.setHairpin(s, host.index, true);
    const podLink = rtnl.getLink(podSock, ifname);
    if (!podLink) throw new CniError(ERR.kernel, `${ifname} did not appear in ${pod.path}`);
    rtnl.setLink(podSock, podLink.index, { up: true });
    for (const a of addresses) {
      rtnl.addAddress(podSock, podLink.index, a, { noDad: a.ip.family === 6 });
    }
    for (const r of plan.routes) {
      rtnl.addRoute(podSock, { dst: r.dst, gw: routeGateway(plan, r), oif: podLink.index });
    }
    // Enslaving and bringing up change neither veth MAC; the bridge's may have followed its
    // first port (when something else created it without pinning), so read it again.
    return { bridge: rtnl.getLinkByIndex(s, bridge.index) ?? bridge, host, pod: podLink };
  } catch (e) {
    try {
      const h = host ?? rtnl.getLink(s, hostName);
      if (h) rtnl.deleteLink(s, h.index);
    } catch (undo) {
      console.error(`twill: could not remove ${hostName} after a failed ADD: ${undo}`);
    }
    throw kernelError(e, `wiring ${ifname} into ${pod.path}`);
  } finally {
    podSock.close();
  }
}

/** Deletes the bridge again if this ADD created it and nothing else uses it. */
export function removeBridgeIfUnused(s: NetlinkSocket, bridge: rtnl.Link): void {
  const ports = rtnl.listLinks(s).filter((l) => l.master === bridge.index);
  if (ports.length === 0) rtnl.deleteLink(s, bridge.index);
}

/** The first of this attachment's candidate host-end names that no link on the node has. */
export function freeHostName(s: NetlinkSocket, containerId: string, ifname: string): string {
  for (let n = 0;; n++) {
    const name = hostVethName(containerId, n === 0 ? ifname : `${ifname}#${n}`);
    if (!rtnl.getLink(s, name)) return name;
  }
}

/** Removes the attachment; everything already gone counts as removed. */
export function detach(
  s: NetlinkSocket,
  pod: Netns | null,
  hostName: string | null,
  ifname: string,
): void {
  if (pod) {
    const podSock = pod.socket();
    try {
      const l = rtnl.getLink(podSock, ifname);
      if (l) {
        try {
          rtnl.deleteLink(podSock, l.index);
        } catch (e) {
          ignoreGone(e);
        }
      }
    } finally {
      podSock.close();
    }
  }
  const h = hostName ? rtnl.getLink(s, hostName) : null;
  if (h) {
    try {
      rtnl.deleteLink(s, h.index);
    } catch (e) {
      ignoreGone(e);
    }
  }
}

export function deleteHostVeth(s: NetlinkSocket, hostName: string): void {
  detach(s, null, hostName, "");
}

/** What CHECK compares against the previous result: read back from the kernel. */
export interface Observed {
  pod: rtnl.Link | null;
  podAddresses: CIDR[];
  podRoutes: { dst: CIDR; gw?: IP }[];
  bridge: rtnl.Link | null;
  host: rtnl.Link | null;
}

export function observe(
  s: NetlinkSocket,
  pod: Netns,
  bridgeName: string,
  hostName: string,
  ifname: string,
): Observed {
  const podSock = pod.socket();
  try {
    const podLink = rtnl.getLink(podSock, ifname);
    const idx = podLink?.index;
    return {
      pod: podLink,
      podAddresses: idx === undefined
        ? []
        : rtnl.listAddresses(podSock).filter((a) => a.index === idx).map((a) => a.cidr),
      podRoutes: idx === undefined
        ? []
        : [...rtnl.listRoutes(podSock, 4), ...rtnl.listRoutes(podSock, 6)]
          .filter((r) => r.oif === idx)
          .map((r) => ({ dst: r.dst, gw: r.gw })),
      bridge: rtnl.getLink(s, bridgeName),
      host: rtnl.getLink(s, hostName),
    };
  } finally {
    podSock.close();
  }
}

export function routeMatches(have: { dst: CIDR; gw?: IP }, dst: CIDR, gw?: IP): boolean {
  if (!cidrEqual(have.dst, dst)) return false;
  if (!gw) return true;
  return !!have.gw && ipEqual(have.gw, gw);
}
