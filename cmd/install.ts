export function runInstallCni(_args: string[], _env: Record<string, string>): Promise<number> {
  console.error("twill install-cni: not built yet");
  return Promise.resolve(1);
}
