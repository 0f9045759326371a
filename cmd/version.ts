import { VERSION } from "../lib/version.ts";

export { VERSION };

export function runVersion(_args: string[]): number {
  console.log(`twill ${VERSION} (deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch})`);
  return 0;
}
