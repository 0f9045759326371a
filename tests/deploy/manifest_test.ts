// The Kubernetes manifest and the systemd unit say what the README promises: a kube-flannel-like
// DaemonSet (host network, NET_ADMIN/NET_RAW, probes on 9099, install-cni init container, the
// data dir and /run/flannel from the host, token from a Secret, one init node) and a unit that
// restarts on failure after the network is online.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { run } from "../../scripts/lib/run.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
// deno-lint-ignore no-explicit-any
type Obj = any;

function manifest(): Obj[] {
  const text = Deno.readTextFileSync(join(ROOT, "deploy", "kube-twill.yaml"));
  const docs = parseAllDocuments(text);
  for (const d of docs) assert.equal(d.errors.length, 0, `YAML error: ${d.errors[0]?.message}`);
  return docs.map((d) => d.toJS()).filter((d) => d !== null);
}

function byKind(docs: Obj[], kind: string): Obj[] {
  return docs.filter((d) => d.kind === kind);
}

function daemonSets(): Obj[] {
  return byKind(manifest(), "DaemonSet");
}

Deno.test("manifest: the kinds a kube-flannel-like install needs, all in one namespace", () => {
  const docs = manifest();
  const kinds = docs.map((d) => d.kind).sort();
  assert.deepEqual(kinds, [
    "ConfigMap",
    "ConfigMap",
    "DaemonSet",
    "DaemonSet",
    "Namespace",
    "Service",
    "ServiceAccount",
  ]);
  const ns = byKind(docs, "Namespace")[0].metadata.name;
  assert.equal(ns, "kube-twill");
  for (const d of docs.filter((d) => d.kind !== "Namespace")) {
    assert.equal(d.metadata.namespace, ns, `${d.kind} ${d.metadata.name} is outside ${ns}`);
  }
  const svc = byKind(docs, "Service")[0];
  assert.equal(svc.spec.clusterIP, "None", "the store Service is headless");
  assert.equal(svc.spec.ports[0].port, 8473);
});

Deno.test("manifest: ConfigMap carries Flannel's net-conf.json and the kube-flannel conflist", () => {
  const cm = byKind(manifest(), "ConfigMap").find((c) => c.metadata.name === "kube-twill-cfg");
  assert.ok(cm, "ConfigMap kube-twill-cfg");
  const net = JSON.parse(cm.data["net-conf.json"]);
  assert.equal(net.Network, "10.244.0.0/16");
  assert.equal(net.Backend.Type, "vxlan");
  const cni = JSON.parse(cm.data["cni-conf.json"]);
  assert.equal(cni.name, "cbr0");
  assert.equal(cni.plugins[0].type, "flannel");
  assert.equal(cni.plugins[0].delegate.isDefaultGateway, true);
  assert.equal(cni.plugins[1].type, "portmap");
});

Deno.test("manifest: every DaemonSet runs on the host network with NET_ADMIN and NET_RAW only", () => {
  const sets = daemonSets();
  assert.equal(sets.length, 2);
  for (const ds of sets) {
    const pod = ds.spec.template.spec;
    assert.equal(pod.hostNetwork, true, `${ds.metadata.name}: hostNetwork`);
    assert.equal(pod.priorityClassName, "system-node-critical");
    assert.equal(pod.serviceAccountName, "twill");
    assert.ok(
      pod.tolerations.some((t: Obj) => t.operator === "Exists" && t.effect === "NoSchedule"),
    );
    const c = pod.containers[0];
    assert.equal(c.securityContext.privileged, false);
    assert.deepEqual([...c.securityContext.capabilities.add].sort(), ["NET_ADMIN", "NET_RAW"]);
    // Template labels must match the selector, or the API server rejects the DaemonSet.
    for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) {
      assert.equal(ds.spec.template.metadata.labels[k], v, `${ds.metadata.name}: selector ${k}`);
    }
  }
});

Deno.test("manifest: liveness /healthz and readiness /readyz on 9099", () => {
  for (const ds of daemonSets()) {
    const c = ds.spec.template.spec.containers[0];
    assert.equal(c.livenessProbe.httpGet.path, "/healthz");
    assert.equal(c.livenessProbe.httpGet.port, 9099);
    assert.equal(c.readinessProbe.httpGet.path, "/readyz");
    assert.equal(c.readinessProbe.httpGet.port, 9099);
  }
});

Deno.test("manifest: an init container runs `twill install-cni` into the host's CNI dirs", () => {
  for (const ds of daemonSets()) {
    const pod = ds.spec.template.spec;
    const init = pod.initContainers.find((c: Obj) => c.name === "install-cni");
    assert.ok(init, `${ds.metadata.name}: install-cni init container`);
    assert.deepEqual(init.command.slice(0, 2), ["/bin/sh", "-c"]);
    const m = /^\/usr\/local\/bin\/twill install-cni --bin-dir (\S+) --conf-dir (\S+) &&/.exec(
      init.command[2],
    );
    assert.ok(m, `${ds.metadata.name}: the init container starts with twill install-cni`);
    const mountOf = (path: string) => init.volumeMounts.find((m: Obj) => m.mountPath === path);
    const hostPathOf = (name: string) =>
      pod.volumes.find((v: Obj) => v.name === name).hostPath.path;
    assert.equal(hostPathOf(mountOf(m[1]).name), "/opt/cni/bin");
    assert.equal(hostPathOf(mountOf(m[2]).name), "/etc/cni/net.d");
  }
});

Deno.test("manifest: the init container installs the plugin and the ConfigMap's conflist", async () => {
  const docs = manifest();
  const cm = byKind(docs, "ConfigMap").find((c) => c.metadata.name === "kube-twill-cfg");
  const dir = await Deno.makeTempDir({ prefix: "twill-deploy-" });
  try {
    for (const d of ["bin", "netd", "cfg"]) await Deno.mkdir(join(dir, d));
    await Deno.writeTextFile(join(dir, "cfg", "cni-conf.json"), cm.data["cni-conf.json"]);
    // A stand-in for twill install-cni: writes the plugin and its built-in conflist.
    const stub = join(dir, "twill");
    await Deno.writeTextFile(
      stub,
      '#!/bin/sh\n[ "$1" = install-cni ] && echo plugin > "$3/flannel" && echo builtin > "$5/10-flannel.conflist"\n',
      { mode: 0o755 },
    );
    for (const ds of byKind(docs, "DaemonSet")) {
      const init = ds.spec.template.spec.initContainers[0];
      const script = (init.command[2] as string)
        .replaceAll("/usr/local/bin/twill", stub)
        .replaceAll("/host/opt/cni/bin", join(dir, "bin"))
        .replaceAll("/host/etc/cni/net.d", join(dir, "netd"))
        .replaceAll("/etc/kube-flannel", join(dir, "cfg"));
      const out = await run("sh", ["-c", script]);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(await Deno.readTextFile(join(dir, "bin", "flannel")), "plugin\n");
      assert.equal(
        await Deno.readTextFile(join(dir, "netd", "10-flannel.conflist")),
        cm.data["cni-conf.json"],
      );
      assert.deepEqual([...Deno.readDirSync(join(dir, "netd"))].map((e) => e.name), [
        "10-flannel.conflist",
      ]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("manifest: data dir and /run/flannel are the host's; every mount has its volume", () => {
  for (const ds of daemonSets()) {
    const pod = ds.spec.template.spec;
    const volumes = new Map(pod.volumes.map((v: Obj) => [v.name, v]));
    for (const c of [...pod.containers, ...pod.initContainers]) {
      for (const m of c.volumeMounts) {
        assert.ok(
          volumes.has(m.name),
          `${ds.metadata.name}/${c.name}: mount ${m.name} has no volume`,
        );
      }
    }
    const agent = pod.containers[0];
    const hostMount = (mountPath: string) => {
      const m = agent.volumeMounts.find((m: Obj) => m.mountPath === mountPath);
      assert.ok(m, `${ds.metadata.name}: ${mountPath} mounted`);
      return (volumes.get(m.name) as Obj).hostPath?.path;
    };
    assert.equal(hostMount("/var/lib/twill"), "/var/lib/twill");
    assert.equal(hostMount("/run/flannel"), "/run/flannel");
    const cfg = agent.volumeMounts.find((m: Obj) => m.mountPath.startsWith("/etc/kube-flannel"));
    assert.equal((volumes.get(cfg.name) as Obj).configMap.name, "kube-twill-cfg");
  }
});

Deno.test("manifest: FLANNELD_TOKEN from Secret key `secret` (init) or `join-token` (joiners)", () => {
  const sets = daemonSets();
  const mode = (ds: Obj) =>
    ds.spec.template.spec.containers[0].env.find((e: Obj) => e.name === "TWILL_MODE").value;
  for (const ds of sets) {
    const env = ds.spec.template.spec.containers[0].env;
    const token = env.find((e: Obj) => e.name === "FLANNELD_TOKEN");
    assert.ok(token?.valueFrom?.secretKeyRef, `${ds.metadata.name}: FLANNELD_TOKEN from a Secret`);
    assert.equal(token.valueFrom.secretKeyRef.name, "twill-token");
    assert.equal(token.valueFrom.secretKeyRef.key, mode(ds) === "init" ? "secret" : "join-token");
    assert.ok(!env.some((e: Obj) => e.name === "FLANNELD_TOKEN" && e.value), "no literal token");
  }
  const init = sets.filter((ds) => mode(ds) === "init");
  const join = sets.filter((ds) => mode(ds) === "join");
  assert.equal(init.length, 1);
  assert.equal(join.length, 1);
  assert.equal(init[0].spec.template.spec.nodeSelector["twill.io/init"], "true");
  const terms = join[0].spec.template.spec.affinity.nodeAffinity
    .requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
  assert.ok(
    terms.every((t: Obj) =>
      t.matchExpressions.some((e: Obj) =>
        e.key === "twill.io/init" && e.operator === "NotIn" && e.values.includes("true")
      )
    ),
    "joiners never schedule on the init node",
  );
  const joinEnv = join[0].spec.template.spec.containers[0].env.find((e: Obj) =>
    e.name === "TWILL_JOIN"
  );
  assert.equal(joinEnv.valueFrom.configMapKeyRef.name, "twill-bootstrap");
});

// Runs the manifest's entrypoint script with `twill` replaced by a stub that prints its argv.
async function entrypoint(
  env: Record<string, string>,
  member: boolean,
): Promise<{ code: number; out: string; err: string }> {
  const cm = byKind(manifest(), "ConfigMap").find((c) => c.metadata.name === "twill-bootstrap");
  const dir = await Deno.makeTempDir({ prefix: "twill-deploy-" });
  try {
    const stub = join(dir, "twill");
    await Deno.writeTextFile(stub, '#!/bin/sh\necho "$@"\n', { mode: 0o755 });
    const data = join(dir, "data");
    await Deno.mkdir(data);
    if (member) await Deno.writeTextFile(join(data, "member.json"), "{}");
    const script = (cm.data["entrypoint.sh"] as string)
      .replaceAll("/usr/local/bin/twill", stub)
      .replace("data=/var/lib/twill", `data=${data}`);
    const out = await run("sh", ["-c", script], { env, clearEnv: true });
    const text = (s: string) => s.trim().replaceAll(data, "DATA");
    return { code: out.code, out: text(out.stdout), err: text(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("manifest entrypoint: --init once, --join elsewhere, neither once a member", async () => {
  const init = await entrypoint({ TWILL_MODE: "init" }, false);
  assert.deepEqual(init, { code: 0, out: "agent --init --data-dir DATA", err: "" });
  const joinEnv = { TWILL_MODE: "join", TWILL_JOIN: "10.0.0.1:8473" };
  const join = await entrypoint({ ...joinEnv, FLANNELD_TOKEN: "K10x::y" }, false);
  assert.deepEqual(join, { code: 0, out: "agent --join 10.0.0.1:8473 --data-dir DATA", err: "" });
  const pending = await entrypoint({ ...joinEnv, FLANNELD_TOKEN: "pending" }, false);
  assert.equal(pending.code, 1);
  assert.match(pending.err, /Secret twill-token has no join-token yet/);
  const restart = await entrypoint({ TWILL_MODE: "init" }, true);
  assert.deepEqual(restart, { code: 0, out: "agent --data-dir DATA", err: "" });
  const noJoin = await entrypoint({ TWILL_MODE: "join" }, false);
  assert.equal(noJoin.code, 1);
  assert.match(noJoin.err, /TWILL_JOIN is empty/);
  const bad = await entrypoint({ TWILL_MODE: "both" }, false);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /TWILL_MODE must be init or join/);
});

// ---- systemd unit ----

function unit(): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of Deno.readTextFileSync(join(ROOT, "deploy", "twill.service")).split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const sec = /^\[(\w+)\]$/.exec(line);
    if (sec) {
      current = new Map();
      sections.set(sec[1], current);
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(current && eq > 0, `not a unit line: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

Deno.test("systemd unit: after the network is online, restarts on failure, keeps its dirs", () => {
  const u = unit();
  assert.deepEqual([...u.keys()], ["Unit", "Service", "Install"]);
  const get = (s: string, k: string) => u.get(s)?.get(k)?.join(" ");
  assert.equal(get("Unit", "After"), "network-online.target");
  assert.equal(get("Unit", "Wants"), "network-online.target");
  assert.equal(get("Service", "Restart"), "on-failure");
  assert.equal(get("Service", "EnvironmentFile"), "/etc/default/twill");
  assert.equal(get("Service", "StateDirectory"), "twill");
  assert.equal(get("Service", "RuntimeDirectory"), "flannel");
  assert.equal(get("Service", "RuntimeDirectoryPreserve"), "yes");
  assert.equal(get("Install", "WantedBy"), "multi-user.target");
  const exec = get("Service", "ExecStart")!;
  assert.match(exec, /\/usr\/local\/bin\/twill agent --data-dir \/var\/lib\/twill/);
  assert.match(exec, /member\.json/, "restarts skip --init/--join once the data dir has a member");
});

Deno.test("systemd unit: its ExecStart shell is valid and picks bootstrap flags only once", async () => {
  const exec = unit().get("Service")!.get("ExecStart")![0];
  const m = /^\/bin\/sh -c '(.*)'$/.exec(exec);
  assert.ok(m, "ExecStart is /bin/sh -c '…'");
  const dir = await Deno.makeTempDir({ prefix: "twill-unit-" });
  try {
    const stub = join(dir, "twill");
    await Deno.writeTextFile(stub, '#!/bin/sh\necho "$@"\n', { mode: 0o755 });
    // systemd turns "$$" into "$" (so the shell, not systemd, expands TWILL_BOOTSTRAP).
    const body = m[1].replaceAll("$$", "$").replaceAll("/usr/local/bin/twill", stub)
      .replaceAll("/var/lib/twill", join(dir, "data"));
    const runIt = async () => {
      const out = await run("sh", ["-c", body], {
        env: { TWILL_BOOTSTRAP: "--join 10.0.0.1:8473" },
        clearEnv: true,
      });
      return out.stdout.trim().replaceAll(dir, "D");
    };
    assert.equal(
      await runIt(),
      "agent --data-dir D/data --subnet-file /run/flannel/subnet.env --join 10.0.0.1:8473",
    );
    await Deno.mkdir(join(dir, "data"));
    await Deno.writeTextFile(join(dir, "data", "member.json"), "{}");
    assert.equal(await runIt(), "agent --data-dir D/data --subnet-file /run/flannel/subnet.env");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy: every FLANNELD_* variable it sets names a real `twill agent` flag", async () => {
  const { AGENT_FLAGS, envName } = await import("../../cmd/agent.ts");
  const known = new Set(AGENT_FLAGS.map((f: { name: string }) => envName(f.name)));
  const texts = ["kube-twill.yaml", "twill.env", "twill.service"].map((f) =>
    Deno.readTextFileSync(join(ROOT, "deploy", f))
  );
  const used = new Set(texts.flatMap((t) => [...t.matchAll(/FLANNELD_[A-Z_]+/g)].map((m) => m[0])));
  assert.ok(used.size >= 5);
  for (const v of used) assert.ok(known.has(v), `${v} is not a twill agent flag`);
});

Deno.test("systemd unit: systemd-analyze verify finds nothing to complain about", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twill-unit-" });
  try {
    const text = Deno.readTextFileSync(join(ROOT, "deploy", "twill.service"));
    await Deno.writeTextFile(join(dir, "twill.service"), text);
    let out;
    try {
      out = await run("systemd-analyze", ["verify", "--man=no", "./twill.service"], { cwd: dir });
    } catch (e) {
      // No systemd on this machine: the unit's keys are still checked by the parser above.
      assert.ok(e instanceof Deno.errors.NotFound, String(e));
      assert.equal(unit().get("Service")?.get("Restart")?.[0], "on-failure");
      return;
    }
    const complaints = out.stderr.split("\n")
      .filter((l) => l.includes("twill.service"));
    assert.deepEqual(complaints, []);
    // The check is real: a broken key is reported.
    await Deno.writeTextFile(
      join(dir, "twill.service"),
      text.replace("Restart=on-failure", "Restart=sometimes"),
    );
    const bad = await run("systemd-analyze", ["verify", "--man=no", "./twill.service"], {
      cwd: dir,
    });
    assert.match(bad.stderr, /twill\.service:\d+: .*restart/i);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
