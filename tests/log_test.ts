import assert from "node:assert/strict";
import { formatLogLine, makeLogger } from "../lib/log.ts";

Deno.test("one log format: ts first, the event's fields, then the context; levels filtered", () => {
  const lines: string[] = [];
  const log = makeLogger({
    context: { node: "n1" },
    write: (l) => lines.push(l),
    now: () => new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678)),
  });
  log("debug", "hidden", {});
  log("info", "lease_acquired", { subnet: "10.5.3.0/24", skip: undefined });
  log("warn", "peer_failed", { node: 7, error: new Error("no route to host"), n: 3n });
  assert.deepEqual(lines, [
    "ts=2026-01-02T03:04:05.678Z level=info event=lease_acquired subnet=10.5.3.0/24 node=n1",
    'ts=2026-01-02T03:04:05.678Z level=warn event=peer_failed node=7 error="no route to host" n=3',
  ]);
});

Deno.test("values that would break key=value parsing are JSON-quoted", () => {
  assert.equal(
    formatLogLine("info", "x", { a: "", b: "k=v", c: { d: 1 }, e: "tab\there" }),
    'level=info event=x a="" b="k=v" c="{\\"d\\":1}" e="tab\\there"',
  );
});
