// The pure half of `scripts/check-structure.ts`: given source texts (path relative to the repo
// root, forward slashes), measure every function and find the import rules they break. No file
// system here, so the tests feed in-memory sources. Parsing is the TypeScript compiler's own, so
// what counts as a function is what the language says, not what a regex guesses.
import ts from "typescript";
import { posix } from "node:path";

/** A function longer than this many lines (first to last, inclusive) is a violation. */
export const MAX_FUNCTION_LINES = 100;

/**
 * Functions allowed past the limit, as `path:Qualified.name`. Only the Raft step functions: like
 * etcd's, each is one switch over message types that reads best whole, next to the paper.
 */
export const LONG_FUNCTION_ALLOWLIST: ReadonlySet<string> = new Set([
  "lib/raft/raft.ts:Raft.step",
  "lib/raft/raft.ts:Raft.stepLeader",
  "lib/raft/raft.ts:Raft.stepCandidate",
  "lib/raft/raft.ts:Raft.stepFollower",
]);

export interface SourceFile {
  path: string;
  text: string;
}

export interface FunctionSpan {
  path: string;
  /** 1-based line of the function's first token. */
  line: number;
  name: string;
  lines: number;
}

/** Every function-like node that has a body: declarations, methods, accessors, arrows. */
export function measureFunctions(file: SourceFile): FunctionSpan[] {
  const sf = ts.createSourceFile(file.path, file.text, ts.ScriptTarget.Latest, true);
  const out: FunctionSpan[] = [];
  const visit = (node: ts.Node): void => {
    if (isFunctionWithBody(node)) {
      const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      out.push({
        path: file.path,
        line: first + 1,
        name: functionName(node),
        lines: last - first + 1,
      });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

function isFunctionWithBody(node: ts.Node): node is ts.FunctionLikeDeclaration {
  return (ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) || ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node) || ts.isArrowFunction(node) ||
    ts.isFunctionExpression(node)) && node.body !== undefined;
}

/** `Class.method`, `fn`, or the variable/property an anonymous function is bound to. */
function functionName(node: ts.FunctionLikeDeclaration): string {
  const own = node.name !== undefined ? propertyName(node.name) : undefined;
  const parent = node.parent;
  if (ts.isClassLike(parent)) {
    const member = ts.isConstructorDeclaration(node) ? "constructor" : own ?? "<anonymous>";
    return `${parent.name?.text ?? "<class>"}.${member}`;
  }
  if (own !== undefined) return own;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)) {
    return propertyName(parent.name) ?? "<anonymous>";
  }
  if (ts.isPropertyDeclaration(parent) && ts.isClassLike(parent.parent)) {
    return `${parent.parent.name?.text ?? "<class>"}.${propertyName(parent.name) ?? "<anonymous>"}`;
  }
  return "<anonymous>";
}

function propertyName(name: ts.Node): string | undefined {
  if (ts.isIdentifier(name) || ts.isPrivateIdentifier(name) || ts.isStringLiteral(name)) {
    return name.text;
  }
  return undefined;
}

/** Repo-relative paths this file imports (static, re-exports and literal dynamic imports). */
export function importsOf(file: SourceFile): string[] {
  const sf = ts.createSourceFile(file.path, file.text, ts.ScriptTarget.Latest, true);
  const specs: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)
    ) {
      specs.push(node.moduleSpecifier.text);
    } else if (
      ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments.length > 0 && ts.isStringLiteralLike(node.arguments[0])
    ) {
      specs.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return specs.filter((s) => s.startsWith(".")).map((s) =>
    posix.normalize(posix.join(posix.dirname(file.path), s))
  );
}

/**
 * The graph node a lib/ file belongs to: its top-level folder (`lib/store`), or for a file at
 * the top of lib/ the file itself (`lib/log.ts`), so a shared helper that imported back into a
 * folder would still show up in a cycle. undefined outside lib/.
 */
export function libNode(path: string): string | undefined {
  const parts = path.split("/");
  if (parts[0] !== "lib" || parts.length < 2) return undefined;
  return `lib/${parts[1]}`;
}

/** from-node -> to-node -> one importing file, as evidence to print. */
export type FolderGraph = Map<string, Map<string, string>>;

export function folderGraph(files: readonly SourceFile[]): FolderGraph {
  const graph: FolderGraph = new Map();
  for (const file of files) {
    const from = libNode(file.path);
    if (from === undefined) continue;
    if (!graph.has(from)) graph.set(from, new Map());
    for (const target of importsOf(file)) {
      const to = libNode(target);
      if (to === undefined || to === from) continue;
      const edges = graph.get(from)!;
      if (!edges.has(to)) edges.set(to, `${file.path} -> ${target}`);
    }
  }
  return graph;
}

/**
 * One cycle per strongly connected component with more than one node (Tarjan), each as the node
 * path `[a, b, ..., a]`, found by walking inside the component from its smallest node.
 */
export function findCycles(graph: FolderGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  const connect = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) components.push(component.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v);
  return components.map((c) => cycleWithin(graph, new Set(c), c[0]));
}

/** A shortest path start -> ... -> start inside one component (breadth-first). */
function cycleWithin(graph: FolderGraph, members: Set<string>, start: string): string[] {
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of [...(graph.get(v)?.keys() ?? [])].sort()) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [v];
        while (path[0] !== start) path.unshift(prev.get(path[0])!);
        return [...path, start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

export interface StructureReport {
  /** The longest function outside the allowlist. */
  longest: FunctionSpan | undefined;
  cycles: string[][];
  /** One human line per broken rule. */
  violations: string[];
}

/** Every rule over lib/ and cmd/ sources: function length, lib never imports cmd, no cycles. */
export function checkStructure(files: readonly SourceFile[]): StructureReport {
  const violations: string[] = [];
  let longest: FunctionSpan | undefined;
  for (const file of files) {
    for (const fn of measureFunctions(file)) {
      if (LONG_FUNCTION_ALLOWLIST.has(`${fn.path}:${fn.name}`)) continue;
      if (longest === undefined || fn.lines > longest.lines) longest = fn;
      if (fn.lines > MAX_FUNCTION_LINES) {
        violations.push(
          `${fn.path}:${fn.line} ${fn.name} is ${fn.lines} lines (limit ${MAX_FUNCTION_LINES})`,
        );
      }
    }
    if (file.path.startsWith("lib/")) {
      for (const target of importsOf(file)) {
        if (target.startsWith("cmd/")) {
          violations.push(`${file.path} imports ${target} (lib must not import cmd)`);
        }
      }
    }
  }
  const graph = folderGraph(files);
  const cycles = findCycles(graph);
  for (const cycle of cycles) {
    const evidence = cycle.slice(1).map((to, i) => graph.get(cycle[i])!.get(to)!);
    violations.push(`folder cycle ${cycle.join(" -> ")} (${evidence.join("; ")})`);
  }
  return { longest, cycles, violations };
}
