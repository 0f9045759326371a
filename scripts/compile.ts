// deno task compile — builds dist/twill, the one self-contained binary, with `deno compile`.
//
// Permissions are the least the three faces need, each granted for a reason:
//   --allow-net   agent: store API and Raft peers (TCP 8473), health/metrics (TCP 9099), and
//                 the client talking to members or an external etcd; ctl: the same client.
//   --allow-read  data dir, net-conf.json, subnet.env, the CNI config dirs, /proc and /sys
//                 (interface MTU, netns paths), and install-cni reading its own executable.
//   --allow-write data dir (Raft log, snapshots, identity, VTEP MAC), subnet.env, the CNI's
//                 IPAM state and dataDir, install-cni's bin and conf dirs.
//   --allow-run   agent: `ip -batch`, `ip -j`, `bridge -j`, `nft -f` (iproute2, nftables).
//   --allow-env   FLANNELD_* flags, CNI_* variables (the CNI face is chosen by CNI_COMMAND).
//   --allow-ffi   CNI face: rtnetlink and setns() through libc (Deno.dlopen("libc.so.6")).
//   --allow-sys   hostname (default node name) and network interfaces (default --iface).
// Every face is imported lazily by cmd/dispatch.ts, and some faces load more lazily; every
// module named in a lazy import() is passed with --include so the compiled binary has it even
// where the module graph would miss one.
//
// Where the Deno runtime (denort) cannot be downloaded, it fails with one clear line.

import { FACE_MODULES } from "../cmd/dispatch.ts";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "./lib/run.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

export const PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
];

/**
 * Every module loaded by a lazy `import("./…")` in cmd/ and lib/ (each face, and what a face
 * loads only when needed), as paths relative to `dir`, so the binary has them all.
 */
export function lazyModules(dir: string): string[] {
  const found = new Set<string>();
  const walk = (rel: string): void => {
    for (const entry of Deno.readDirSync(join(dir, rel))) {
      const path = `${rel}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) {
        const text = Deno.readTextFileSync(join(dir, path));
        for (const m of text.matchAll(/\bimport\(\s*"(\.{1,2}\/[^"]+)"\s*\)/g)) {
          found.add(normalize(join(dirname(path), m[1])));
        }
      }
    }
  };
  for (const top of ["cmd", "lib"]) walk(top);
  // Faces loaded through a computed specifier (cmd/dispatch.ts FACE_MODULES) are not visible to
  // the regex above; name them here so the compiled binary carries them.
  for (const f of Object.values(FACE_MODULES)) found.add(normalize(join("cmd", f)));
  return [...found].sort();
}

/** The `deno compile` arguments for building `output` for `target`. */
export function compileArgs(output: string, target: string | undefined, dir: string): string[] {
  const args = ["compile", ...PERMISSIONS, "--output", output];
  if (target) args.push("--target", target);
  for (const m of lazyModules(dir)) args.push("--include", m);
  args.push("main.ts");
  return args;
}

/** Turns deno compile's failure output into one line a person can act on. */
export function explainFailure(stderr: string, target: string): string {
  const plain = stderr.replace(new RegExp(String.fromCharCode(27) + "\\[[0-9;]*m", "g"), "");
  const offline =
    /dns error|error sending request|Connect|failed to lookup|timed out|Network is unreachable/i;
  if (/denort|dl\.deno\.land|base binary/i.test(plain) && offline.test(plain)) {
    return `compile: deno could not download the runtime for ${target} (no network?); ` +
      `run this on a machine with internet access`;
  }
  const first = plain.split("\n").map((l) => l.trim()).find((l) => /^error/i.test(l)) ??
    plain.trim().split("\n").pop() ?? "unknown error";
  return `compile: deno compile failed: ${first}`;
}

function hostTarget(): string {
  const os = Deno.build.os === "darwin" ? "apple-darwin" : "unknown-linux-gnu";
  return `${Deno.build.arch}-${os}`;
}

async function main(args: string[]): Promise<number> {
  let target: string | undefined;
  let output = join(root, "dist", "twill");
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--target") target = args[++i];
    else if (args[i] === "--output") output = args[++i];
    else {
      console.error(
        `compile: unknown argument "${
          args[i]
        }"; usage: deno task compile [--target T] [--output F]`,
      );
      return 2;
    }
  }
  await Deno.mkdir(dirname(output), { recursive: true });
  const started = performance.now();
  const out = await run(Deno.execPath(), compileArgs(output, target, root), { cwd: root });
  if (out.code !== 0) {
    console.error(explainFailure(out.stderr, target ?? hostTarget()));
    return 1;
  }
  const size = (await Deno.stat(output)).size;
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`compile: built ${output} (${(size / 1e6).toFixed(1)} MB) in ${secs} s`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
