// Chooses the face from the environment and argv. CNI mode wins whenever CNI_COMMAND is set,
// whatever argv says, because container runtimes exec the plugin with arbitrary argv[0].
// Each face is imported lazily so the CNI path loads nothing it does not use.

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
      const { runVersion } = await import("./version.ts");
      return runVersion(rest);
    }
    case "agent": {
      const { runAgent } = await import("./agent.ts");
      return await runAgent(rest, env);
    }
    case "ctl": {
      const { runCtl } = await import("./ctl.ts");
      return await runCtl(rest, env);
    }
    case "install-cni": {
      const { runInstallCni } = await import("./install.ts");
      return await runInstallCni(rest, env);
    }
    default:
      console.error(`twill: unknown command "${command}"; run 'twill --help' to see the commands`);
      return 2;
  }
}
