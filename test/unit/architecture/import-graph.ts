/**
 * The import graph of `src/`, read from the source text: which module imports which at
 * run time. Type-only imports (`import type`, or every specifier marked `type`) are
 * erased by type stripping and do not count: they cannot form a runtime cycle.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface ImportEdge {
  readonly from: string;
  readonly to: string;
  /** False when every imported name is a type (erased at run time). */
  readonly runtime: boolean;
}

/** Every .ts file below `dir`, as paths relative to `root`. */
export function sourceFiles(root: string, dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push(path.relative(root, p));
    }
  };
  walk(path.join(root, dir));
  return out.sort();
}

// `import ... from '...'` / `export ... from '...'`, across lines; side-effect imports too.
const STATEMENT = /(?:^|\n)\s*(import|export)\s+([\s\S]*?)\s*from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g;

function isRuntime(keyword: string, clause: string): boolean {
  if (/^type\s/.test(clause)) return false;
  if (keyword === 'export' && /^\*/.test(clause)) return true;
  const braces = /\{([\s\S]*)\}/.exec(clause);
  const outside = clause.replace(/\{[\s\S]*\}/, '').replace(/,/g, '').trim();
  if (outside !== '') return true; // a default or namespace import
  if (braces === null) return true;
  const names = braces[1]!.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return names.length === 0 || names.some((n) => !n.startsWith('type '));
}

/** Edges between files of `files` (relative paths under `root`); bare packages are left out. */
export function importEdges(root: string, files: readonly string[]): ImportEdge[] {
  const known = new Set(files);
  const edges: ImportEdge[] = [];
  for (const f of files) {
    const text = readFileSync(path.join(root, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
    for (const m of text.matchAll(STATEMENT)) {
      const spec = m[3] ?? m[4]!;
      if (!spec.startsWith('.')) continue;
      const to = path.normalize(path.join(path.dirname(f), spec));
      if (!known.has(to)) continue;
      edges.push({ from: f, to, runtime: m[4] !== undefined || isRuntime(m[1]!, m[2]!) });
    }
  }
  return edges;
}

/** Strongly connected components with more than one file (or a self-import): the cycles. */
export function cycles(files: readonly string[], edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const e of edges) next.get(e.from)!.push(e.to);
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v)!) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || next.get(v)!.includes(v)) out.push(scc.sort());
    }
  };
  for (const f of files) if (!index.has(f)) visit(f);
  return out;
}
