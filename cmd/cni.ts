export function runCni(_env: Record<string, string>): Promise<number> {
  const err = { cniVersion: "1.1.0", code: 4, msg: "the CNI face is not built yet" };
  console.log(JSON.stringify(err));
  return Promise.resolve(1);
}
