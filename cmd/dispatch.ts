// Chooses the face from the environment and argv. CNI mode wins whenever CNI_COMMAND is set,
// whatever argv says, because container runtimes exec the plugin with arbitrary argv[0].
// Each face is imported lazily so the CNI path loads nothing it does not use. The CNI face is
// imported by a literal path; the others through FACE_MODULES, a computed specifier that Deno
// does not prefetch, so a CNI exec never reads or hashes the agent, store and Raft modules.
// scripts/compile.ts includes FACE_MODULES explicitly for `deno compile`.

export const FACE_MODULES = {
  version: "./version.ts",
  agent: "./agent.ts",
  ctl: "./ctl.ts",
  install: "./install.ts",
} as const;

type FaceName = keyof typeof FACE_MODULES;

// deno-lint-ignore no-explicit-any
function loadFace(name: FaceName): Promise<any> {
  const specifier: string = FACE_MODULES[name];
  return import(specifier);
}

export const USAGE = `twill: a Kubernetes pod network in one binary

usage:
  twill agent --init [--net-config-path F] [--token T | --token-file F]   first node, once
  twill agent --join HOST:PORT[,HOST:PORT...] --token T                   every other node
  twill ctl [--server HOST:PORT] [--token T] [--json] <command>           inspect and administer
  twill install-cni [--bin-dir D] [--conf-dir D]                         install the CNI plugin
  twill version                                                          print the version
  (with CNI_COMMAND in the environment, twill is the CNI plugin "flannel")

run 'twill <command> --help' for the flags of a command.
`;

export async function main(args: string[], env: Record<string, string>): Promise<number> {
  if (env.CNI_COMMAND !== undefined) {
    const { runCni } = await import("./cni.ts");
    return await runCni(env);
  }
  const [command, ...rest] = args;
  switch (command) {
    case undefined:
    case "help":
    case "-h":
    case "--help":
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    case "version":
    case "--version": {
      const { runVersion } = await loadFace("version");
      return runVersion(rest);
    }
    case "agent": {
      const { runAgent } = await loadFace("agent");
      return await runAgent(rest, env);
    }
    case "ctl": {
      const { runCtl } = await loadFace("ctl");
      return await runCtl(rest, env);
    }
    case "install-cni": {
      const { runInstallCni } = await loadFace("install");
      return await runInstallCni(rest, env);
    }
    default:
      console.error(`twill: unknown command "${command}"; run 'twill --help' to see the commands`);
      return 2;
  }
}
