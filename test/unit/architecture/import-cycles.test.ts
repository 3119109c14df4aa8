/**
 * No runtime import cycle in src/: a cycle makes module evaluation order decide whether
 * a binding is initialised when first used (the reason `setTaskRunner`-style setters
 * appear), and it hides which layer owns what. Type-only cycles are harmless (erased).
 */
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cycles, importEdges, sourceFiles } from './import-graph.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('import graph of src/', () => {
  const files = sourceFiles(ROOT, 'src');
  const edges = importEdges(ROOT, files);

  it('reads the imports (the graph is not empty)', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(edges.filter((e) => e.runtime).length).toBeGreaterThan(100);
  });

  it('has no runtime import cycle', () => {
    const runtime = edges.filter((e) => e.runtime);
    expect(cycles(files, runtime)).toEqual([]);
  });

  it('has type-only cycles only inside the LUN worker (its handlers take the LogicalUnit type)', () => {
    const all = cycles(files, edges);
    expect(all.length, 'the LUN worker one is there: the checker sees type-only imports').toBeGreaterThan(0);
    expect(all.filter((c) => !c.every((f) => f.startsWith('src/workers/lun/')))).toEqual([]);
  });

  it('detects a cycle when there is one (the checker itself)', () => {
    const fs = ['a.ts', 'b.ts', 'c.ts'];
    const es = [
      { from: 'a.ts', to: 'b.ts', runtime: true },
      { from: 'b.ts', to: 'a.ts', runtime: true },
      { from: 'b.ts', to: 'c.ts', runtime: true },
    ];
    expect(cycles(fs, es)).toEqual([['a.ts', 'b.ts']]);
  });
});
