// The structure rules on in-memory sources: the 100-line boundary, the step-function allowlist,
// lib -> cmd imports and folder cycles, so the check cannot silently stop checking.
import { strict as assert } from "node:assert";
import {
  checkStructure,
  findCycles,
  folderGraph,
  importsOf,
  measureFunctions,
} from "../../scripts/lib/structure.ts";

/** A function whose text spans exactly `lines` lines (header and closing brace included). */
function fnOfLines(name: string, lines: number): string {
  const body = Array.from({ length: lines - 2 }, (_, i) => `  const v${i} = ${i};`);
  return [`export function ${name}(): void {`, ...body, "}"].join("\n") + "\n";
}

Deno.test("a function of 100 lines passes, 101 fails with its place and name", () => {
  const ok = checkStructure([{ path: "lib/a/x.ts", text: fnOfLines("fits", 100) }]);
  assert.deepEqual(ok.violations, []);
  assert.equal(ok.longest?.lines, 100);
  const bad = checkStructure([{ path: "lib/a/x.ts", text: "\n" + fnOfLines("tooLong", 101) }]);
  assert.deepEqual(bad.violations, ["lib/a/x.ts:2 tooLong is 101 lines (limit 100)"]);
});

Deno.test("methods, arrows and function expressions are measured and named", () => {
  const text = [
    "class K {",
    "  m(): void {",
    "  }",
    "}",
    "const arrow = () => {",
    "};",
    "const obj = { prop: function () {",
    "} };",
  ].join("\n");
  const spans = measureFunctions({ path: "lib/a/k.ts", text });
  assert.deepEqual(spans.map((s) => [s.name, s.line, s.lines]), [
    ["K.m", 2, 2],
    ["arrow", 5, 2],
    ["prop", 7, 2],
  ]);
});

Deno.test("the Raft step functions are exempt, other long functions in raft.ts are not", () => {
  const long = Array.from({ length: 120 }, (_, i) => `    const v${i} = ${i};`).join("\n");
  const text =
    `export class Raft {\n  stepLeader(): void {\n${long}\n  }\n  other(): void {\n${long}\n  }\n}\n`;
  const report = checkStructure([{ path: "lib/raft/raft.ts", text }]);
  assert.equal(report.violations.length, 1);
  assert.match(report.violations[0], /Raft\.other is 122 lines/);
  assert.equal(report.longest?.name, "Raft.other");
});

Deno.test("a lib file importing cmd is a violation; cmd importing lib is not", () => {
  const report = checkStructure([
    { path: "lib/store/member/a.ts", text: 'import { X } from "../../../cmd/agent.ts";\n' },
    { path: "cmd/agent.ts", text: 'import { Y } from "../lib/store/member/a.ts";\n' },
  ]);
  assert.deepEqual(report.violations, [
    "lib/store/member/a.ts imports cmd/agent.ts (lib must not import cmd)",
  ]);
});

Deno.test("imports resolve relative paths, re-exports and dynamic imports; bare ones are dropped", () => {
  const text = [
    'import a from "./a.ts";',
    'export { b } from "../b/b.ts";',
    'const c = await import("../../lib/c/c.ts");',
    'import ts from "typescript";',
    'import { join } from "node:path";',
  ].join("\n");
  assert.deepEqual(importsOf({ path: "lib/x/y.ts", text }), [
    "lib/x/a.ts",
    "lib/b/b.ts",
    "lib/c/c.ts",
  ]);
});

Deno.test("a folder cycle is found and printed with the imports that make it", () => {
  const files = [
    { path: "lib/agent/run.ts", text: 'import "../etcd/client.ts";\n' },
    { path: "lib/etcd/client.ts", text: 'import "../store/kv.ts";\n' },
    { path: "lib/store/member/main.ts", text: 'import "../../agent/run.ts";\n' },
    { path: "lib/store/kv.ts", text: 'import "../log.ts";\n' },
    { path: "lib/log.ts", text: "" },
  ];
  const report = checkStructure(files);
  assert.deepEqual(report.cycles, [["lib/agent", "lib/etcd", "lib/store", "lib/agent"]]);
  assert.equal(report.violations.length, 1);
  assert.match(
    report.violations[0],
    /^folder cycle lib\/agent -> lib\/etcd -> lib\/store -> lib\/agent/,
  );
  assert.match(report.violations[0], /lib\/store\/member\/main\.ts -> lib\/agent\/run\.ts/);
});

Deno.test("imports within one folder and acyclic imports between folders are no cycle", () => {
  const graph = folderGraph([
    { path: "lib/a/x.ts", text: 'import "./y.ts";\nimport "../b/z.ts";\n' },
    { path: "lib/a/y.ts", text: 'import "./x.ts";\n' },
    { path: "lib/b/z.ts", text: 'import "../log.ts";\n' },
  ]);
  assert.deepEqual(findCycles(graph), []);
  assert.deepEqual([...graph.get("lib/a")!.keys()], ["lib/b"]);
});

Deno.test("a top-level lib file is its own node, so a two-node cycle through it is found", () => {
  const graph = folderGraph([
    { path: "lib/log.ts", text: 'import "./store/kv.ts";\n' },
    { path: "lib/store/kv.ts", text: 'import "../log.ts";\n' },
  ]);
  assert.deepEqual(findCycles(graph), [["lib/log.ts", "lib/store", "lib/log.ts"]]);
});
