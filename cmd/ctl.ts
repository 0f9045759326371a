export function runCtl(_args: string[], _env: Record<string, string>): Promise<number> {
  console.error("twill ctl: not built yet");
  return Promise.resolve(1);
}
