import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { normalizePath } from '../../src/limits/index.js';
import { BUILT_IN_ROUTES, OTHER_ROUTE, RouteTable } from '../../src/server/routes.js';

describe('route templates', () => {
  const table = new RouteTable();
  const label = (path: string) => table.label(table.idOf(normalizePath(path)));

  it.each([
    ['/categories/MLA97994', '/categories/:id'],
    ['/categories/MLA97994/attributes', '/categories/:id/attributes'],
    ['/items/MLA123456789', '/items/:id'],
    ['/items/MLA1/description', '/items/:id/description'],
    ['/items/MLA1/something/new', '/items/:id/*'],
    ['/items?ids=MLA1,MLA2', '/items'],
    ['/sites/MLA/search?q=celular', '/sites/:site/search'],
    ['/sites/MLB', '/sites/:site'],
    ['/users/me', '/users/me'],
    ['/users/123456', '/users/:id'],
    ['/users/123456/items/search', '/users/:id/items/search'],
    ['/', '/'],
    ['//items//MLA1', '/items/:id'],
  ])('%s → %s', (path, expected) => {
    expect(label(path)).toBe(expected);
  });

  it('falls back to the first segment for unknown resources, and to /other for id-like ones', () => {
    expect(label('/visits/items')).toBe('/visits/*');
    expect(label('/health_check')).toBe('/health_check');
    expect(label('/MLA12345')).toBe(OTHER_ROUTE);
    expect(label('/%F0%9F%92%A5/x')).toBe(OTHER_ROUTE);
  });

  it('tries configured templates first', () => {
    const custom = new RouteTable({ extra: ['/items/:id/reviews/:review'] });
    expect(custom.label(custom.idOf('/items/MLA1/reviews/9'))).toBe('/items/:id/reviews/:review');
  });

  it('keeps the number of labels under the cap for 100,000 random paths', () => {
    const capped = new RouteTable({ maxRoutes: 120 });
    const labels = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const segments = 1 + (i % 4);
      let path = '';
      for (let s = 0; s < segments; s++) {
        // Mostly random letters (fallback candidates), some ids, some known resources.
        const kind = (i + s) % 5;
        path +=
          kind === 0
            ? '/items'
            : `/${randomBytes(3)
                .toString('hex')
                .replace(/\d/g, (d) => 'abcdefghij'[Number(d)]!)}`;
      }
      labels.add(capped.label(capped.idOf(normalizePath(path))));
    }
    expect(capped.size).toBeLessThanOrEqual(Math.max(120, BUILT_IN_ROUTES.length + 2));
    expect(labels.size).toBeLessThanOrEqual(capped.size);
    expect(labels.has(OTHER_ROUTE)).toBe(true);
  });
});
