// twill's version, from deno.json: the one place `twill version`, the store members' status and
// `twill ctl members` read it.
import denoJson from "../deno.json" with { type: "json" };

export const VERSION: string = denoJson.version;
