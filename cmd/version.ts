import denoJson from "../deno.json" with { type: "json" };

export const VERSION: string = denoJson.version;

export function runVersion(_args: string[]): number {
  console.log(`twill ${VERSION} (deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch})`);
  return 0;
}
