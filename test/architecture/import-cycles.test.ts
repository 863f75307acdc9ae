import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { importCycles, importGraph } from './import-graph.js';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

describe('imports under src/', () => {
  it('form no cycle', () => {
    expect(importCycles(importGraph(SRC))).toEqual([]);
  });

  it('the graph sees static, type-only and dynamic imports', () => {
    const graph = importGraph(SRC);
    // serve.ts imports config statically, a type from auth/proxy-auth, and server/index dynamically.
    expect(graph.get('cli/serve.ts')).toEqual(
      expect.arrayContaining(['config.ts', 'auth/proxy-auth.ts', 'server/index.ts']),
    );
  });

  it('the cycle finder reports a cycle through several files and a self-import', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts', 'd.ts']],
      ['d.ts', ['d.ts']],
      ['e.ts', ['a.ts']],
    ]);
    expect(importCycles(graph)).toEqual([['a.ts', 'b.ts', 'c.ts'], ['d.ts']]);
  });
});
