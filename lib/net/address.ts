// Addresses as HOST:PORT strings, the way flags and member tables carry them, and the one rule
// for which address a store member advertises to its peers.

/** "host:port" or "[v6]:port" → [host, port]. Throws a one-line error when malformed. */
export function splitHostPort(addr: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new Error(`"${addr}" is not HOST:PORT (e.g. 10.0.0.1:8473)`);
  }
  return [m[1] ?? m[2], port];
}

export function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** What decides the advertised address (the agent's --advertise, --listen, --public-ip, --iface). */
export interface AdvertiseInput {
  advertise?: string;
  listen: string;
  publicIp?: string;
  iface: string[];
}

/** A host's IPv4 interface addresses and the interface of its default route. */
export interface HostInterfaces {
  v4: { name: string; address: string }[];
  defaultRoute?: string;
}

// Devices a pod network creates: never the address peers should reach the store at.
const POD_NETWORK_DEVICE = /^(flannel|cni|docker|veth|cali|virbr|kube)/;

/** The address other members reach this one at: --advertise, a specific --listen host,
 *  --public-ip, the first --iface, the default-route interface, else the first ordinary
 *  interface (never a pod-network device such as flannel.1 or cni0). The host's interfaces are
 *  read only when the flags do not settle it. */
export function chooseAdvertise(input: AdvertiseInput, readHost: () => HostInterfaces): string {
  if (input.advertise) return input.advertise;
  const [listenHost, port] = splitHostPort(input.listen);
  if (listenHost !== "0.0.0.0" && listenHost !== "::") return joinHostPort(listenHost, port);
  if (input.publicIp) return joinHostPort(input.publicIp, port);
  const host = readHost();
  const addressOf = (name: string) => host.v4.find((i) => i.name === name)?.address;
  for (const want of input.iface) {
    if (/^\d+\.\d+\.\d+\.\d+$/.test(want)) return joinHostPort(want, port);
    const a = addressOf(want);
    if (a) return joinHostPort(a, port);
  }
  const viaDefault = host.defaultRoute ? addressOf(host.defaultRoute) : undefined;
  if (viaDefault) return joinHostPort(viaDefault, port);
  const ordinary = host.v4.filter((i) =>
    !i.address.startsWith("127.") && !POD_NETWORK_DEVICE.test(i.name)
  );
  if (ordinary.length === 0) {
    throw new Error(
      `cannot tell which address peers reach this node at; give --advertise HOST:PORT`,
    );
  }
  return joinHostPort(ordinary[0].address, port);
}

/** chooseAdvertise against this host's interfaces. */
export function resolveAdvertise(input: AdvertiseInput): string {
  return chooseAdvertise(input, readHostInterfaces);
}

function readHostInterfaces(): HostInterfaces {
  const v4 = Deno.networkInterfaces().filter((i) => i.family === "IPv4")
    .map((i) => ({ name: i.name, address: i.address }));
  return { v4, defaultRoute: defaultRouteInterface() };
}

/** The interface of the IPv4 default route, from /proc/net/route. */
function defaultRouteInterface(): string | undefined {
  try {
    const lines = Deno.readTextFileSync("/proc/net/route").split("\n").slice(1);
    for (const line of lines) {
      const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
      if (dest === "00000000" && mask === "00000000") return iface;
    }
  } catch {
    // not Linux, or no procfs
  }
  return undefined;
}
