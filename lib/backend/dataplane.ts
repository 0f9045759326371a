// The per-peer kernel entries a backend wants (routes, permanent neighbours, FDB entries), what
// the kernel has, and the plan that turns one into the other. Pure: the kernel adapter reads the
// actual entries and applies the plan's command lines.

export interface RouteEntry {
  dst: string; // "10.5.2.0/24"
  via: string;
  dev: string;
  onlink: boolean;
}

export interface NeighEntry {
  ip: string;
  mac: string;
  dev: string;
}

export interface FdbEntry {
  mac: string;
  dst: string;
  dev: string;
}

export interface DataPlane {
  routes: RouteEntry[];
  neighs: NeighEntry[];
  fdbs: FdbEntry[];
}

export interface Plan {
  /** `ip` lines: route deletions, neighbour deletions and replacements. */
  ipFirst: string[];
  /** `bridge` lines: FDB deletions then replacements. */
  bridge: string[];
  /** `ip` lines: route additions/replacements (added last, so a route never precedes its L2). */
  ipLast: string[];
  added: number;
  removed: number;
}

export function emptyPlan(p: Plan): boolean {
  return !p.ipFirst.length && !p.bridge.length && !p.ipLast.length;
}

function routeLine(r: RouteEntry): string {
  return `route replace ${r.dst} via ${r.via} dev ${r.dev}${r.onlink ? " onlink" : ""}`;
}

/** Desired vs actual → the commands. Only the actual entries handed in are considered ours. */
export function planDataPlane(desired: DataPlane, actual: DataPlane): Plan {
  const plan: Plan = { ipFirst: [], bridge: [], ipLast: [], added: 0, removed: 0 };

  const wantRoutes = new Map(desired.routes.map((r) => [r.dst, r]));
  const haveRoutes = new Map<string, RouteEntry[]>();
  for (const r of actual.routes) {
    const list = haveRoutes.get(r.dst) ?? [];
    list.push(r);
    haveRoutes.set(r.dst, list);
  }
  for (const [dst, list] of haveRoutes) {
    const want = wantRoutes.get(dst);
    for (const r of list) {
      if (want && sameRoute(want, r)) continue;
      if (want && r.dev === want.dev) continue; // replaced below in place
      plan.ipFirst.push(`route del ${r.dst} via ${r.via} dev ${r.dev}`);
      plan.removed++;
    }
  }

  const wantNeigh = new Map(desired.neighs.map((n) => [`${n.dev} ${n.ip}`, n]));
  const haveNeigh = new Map(actual.neighs.map((n) => [`${n.dev} ${n.ip}`, n]));
  for (const [k, n] of haveNeigh) {
    if (!wantNeigh.has(k)) {
      plan.ipFirst.push(`neigh del ${n.ip} dev ${n.dev}`);
      plan.removed++;
    }
  }
  for (const [k, n] of wantNeigh) {
    const h = haveNeigh.get(k);
    if (h && h.mac === n.mac) continue;
    plan.ipFirst.push(`neigh replace ${n.ip} lladdr ${n.mac} dev ${n.dev} nud permanent`);
    plan.added++;
  }

  const wantFdb = new Map(desired.fdbs.map((f) => [`${f.dev} ${f.mac}`, f]));
  const dels: string[] = [];
  const adds: string[] = [];
  const satisfied = new Set<string>();
  for (const f of actual.fdbs) {
    const k = `${f.dev} ${f.mac}`;
    const w = wantFdb.get(k);
    if (w && w.dst === f.dst) {
      satisfied.add(k);
      continue;
    }
    dels.push(`fdb del ${f.mac} dev ${f.dev} dst ${f.dst} self`);
    plan.removed++;
  }
  for (const [k, f] of wantFdb) {
    if (satisfied.has(k)) continue;
    adds.push(`fdb replace ${f.mac} dev ${f.dev} dst ${f.dst} self permanent`);
    plan.added++;
  }
  plan.bridge = [...dels, ...adds];

  for (const [dst, r] of wantRoutes) {
    const have = haveRoutes.get(dst) ?? [];
    if (have.some((h) => sameRoute(r, h))) continue;
    plan.ipLast.push(routeLine(r));
    plan.added++;
  }
  return plan;
}

function sameRoute(a: RouteEntry, b: RouteEntry): boolean {
  return a.dst === b.dst && a.via === b.via && a.dev === b.dev && a.onlink === b.onlink;
}

/** All lines of a plan in application order, for logs and for the benchmark's floor. */
export function planLines(p: Plan): { ip: string[]; bridge: string[] } {
  return { ip: [...p.ipFirst, ...p.ipLast], bridge: p.bridge };
}

/**
 * Pure: the lines that add `added` and remove `removed` without looking at the kernel (all are
 * replace/del, so repeating them is harmless). Order as in planDataPlane: route and neighbour
 * deletions, then FDB changes, then neighbours and routes.
 */
export function eventLines(added: DataPlane, removedIn: DataPlane, replaced?: DataPlane): Plan {
  const plan: Plan = { ipFirst: [], bridge: [], ipLast: [], added: 0, removed: 0 };
  // entries of replaced leases that the new ones do not overwrite in place
  const removed: DataPlane = {
    routes: [
      ...removedIn.routes,
      ...(replaced?.routes ?? []).filter((r) =>
        !added.routes.some((a) => a.dst === r.dst && a.dev === r.dev)
      ),
    ],
    neighs: [
      ...removedIn.neighs,
      ...(replaced?.neighs ?? []).filter((n) =>
        !added.neighs.some((a) => a.ip === n.ip && a.dev === n.dev)
      ),
    ],
    fdbs: [
      ...removedIn.fdbs,
      ...(replaced?.fdbs ?? []).filter((f) =>
        !added.fdbs.some((a) => a.mac === f.mac && a.dst === f.dst && a.dev === f.dev)
      ),
    ],
  };
  for (const r of removed.routes) plan.ipFirst.push(`route del ${r.dst} via ${r.via} dev ${r.dev}`);
  for (const n of removed.neighs) plan.ipFirst.push(`neigh del ${n.ip} dev ${n.dev}`);
  for (const f of removed.fdbs) plan.bridge.push(`fdb del ${f.mac} dev ${f.dev} dst ${f.dst} self`);
  for (const f of added.fdbs) {
    plan.bridge.push(`fdb replace ${f.mac} dev ${f.dev} dst ${f.dst} self permanent`);
  }
  for (const n of added.neighs) {
    plan.ipLast.push(`neigh replace ${n.ip} lladdr ${n.mac} dev ${n.dev} nud permanent`);
  }
  for (const r of added.routes) plan.ipLast.push(routeLine(r));
  plan.removed = removed.routes.length + removed.neighs.length + removed.fdbs.length;
  plan.added = added.routes.length + added.neighs.length + added.fdbs.length;
  return plan;
}
