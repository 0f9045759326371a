// twill: one binary, three faces. This file only dispatches; every face lives in cmd/.
import { main } from "./cmd/dispatch.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args, Deno.env.toObject()));
}
