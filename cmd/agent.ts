export function runAgent(_args: string[], _env: Record<string, string>): Promise<number> {
  console.error("twill agent: not built yet");
  return Promise.resolve(1);
}
