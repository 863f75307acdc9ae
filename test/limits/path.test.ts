import { describe, expect, it } from 'vitest';
import { compilePathPattern, matchPath, normalizePath, type PathPattern } from '../../src/limits/path.js';

function pattern(text: string): PathPattern {
  const compiled = compilePathPattern(text);
  if (typeof compiled === 'string') throw new Error(compiled);
  return compiled;
}

describe('normalizePath', () => {
  it.each([
    ['/items/MLA1', '/items/MLA1'],
    ['/items/MLA1?attributes=id', '/items/MLA1'],
    ['/items/MLA1#x', '/items/MLA1'],
    ['/', '/'],
    ['', '/'],
    ['//items///MLA1', '/items/MLA1'],
    ['/items/./MLA1', '/items/MLA1'],
    ['/x/../items/MLA1', '/items/MLA1'],
    ['/x/%2e%2e/items/MLA1', '/items/MLA1'],
    ['/x/%2E%2E/items/MLA1', '/items/MLA1'],
    ['/x/.%2e/items', '/items'],
    ['/../../items', '/items'],
    ['/%2e%2e/%2e%2e/etc/passwd', '/etc/passwd'],
    ['/items/%4DLA1', '/items/MLA1'],
    ['/items/%7euser', '/items/~user'],
    ['/items/a%2fb', '/items/a%2Fb'],
    ['/items/a%2Fb/../c', '/items/c'],
    ['/sites/MLA/search?q=a/../b', '/sites/MLA/search'],
    ['/a%20b', '/a%20b'],
    ['/bad%zzescape', '/bad%zzescape'],
    ['/trailing%', '/trailing%'],
    ['/items/', '/items/'],
    ['/items//', '/items/'],
    ['/items/.', '/items/'],
    ['/items/MLA1/..', '/items/'],
    ['/items.json', '/items.json'],
    ['/.well-known/x', '/.well-known/x'],
    ['http://api.mercadolibre.com/items/MLA1?x', '/items/MLA1'],
    ['https://api.mercadolibre.com', '/'],
    ['items/MLA1', '/items/MLA1'],
  ])('%j → %j', (input, output) => {
    expect(normalizePath(input)).toBe(output);
  });

  it('returns a clean path as the same string', () => {
    const path = '/categories/MLA97994';
    expect(normalizePath(path)).toBe(path);
  });
});

describe('path patterns', () => {
  it('a final * matches one or more segments (prefix semantics)', () => {
    const items = pattern('/items/*');
    expect(matchPath(items, '/items/MLA1')).toBe(true);
    expect(matchPath(items, '/items/MLA1/')).toBe(true);
    expect(matchPath(items, '/items/MLA1/pictures/2')).toBe(true);
    expect(matchPath(items, '/items')).toBe(false);
    expect(matchPath(items, '/items/')).toBe(false);
    expect(matchPath(items, '/itemsX/MLA1')).toBe(false);
    expect(matchPath(items, '/item/MLA1')).toBe(false);
    expect(matchPath(items, '/categories/MLA1')).toBe(false);
    expect(matchPath(items, normalizePath('/x/%2e%2e/items/MLA1'))).toBe(true);
    expect(matchPath(items, normalizePath('//items//MLA1'))).toBe(true);
  });

  it(':name matches exactly one segment; a trailing slash does not matter', () => {
    const category = pattern('/categories/:id');
    expect(matchPath(category, '/categories/MLA97994')).toBe(true);
    expect(matchPath(category, '/categories/MLA97994/')).toBe(true);
    expect(matchPath(category, '/categories/MLA97994/attributes')).toBe(false);
    expect(matchPath(category, '/categories')).toBe(false);
    expect(matchPath(category, '/categories/')).toBe(false);
  });

  it('* in the middle matches one segment', () => {
    const orders = pattern('/users/*/orders');
    expect(matchPath(orders, '/users/42/orders')).toBe(true);
    expect(matchPath(orders, '/users/42/43/orders')).toBe(false);
    expect(matchPath(orders, '/users/42/orders/1')).toBe(false);
  });

  it('literal patterns match exactly, case-sensitively', () => {
    const sites = pattern('/sites/MLA');
    expect(matchPath(sites, '/sites/MLA')).toBe(true);
    expect(matchPath(sites, '/sites/MLA/')).toBe(true);
    expect(matchPath(sites, '/sites/mla')).toBe(false);
    expect(matchPath(sites, '/sites/MLAB')).toBe(false);
    expect(matchPath(sites, '/sites')).toBe(false);
    const root = pattern('/');
    expect(matchPath(root, '/')).toBe(true);
    expect(matchPath(root, '/x')).toBe(false);
    expect(matchPath(pattern('/*'), '/anything/at/all')).toBe(true);
    expect(matchPath(pattern('/*'), '/')).toBe(false);
  });

  it('normalises patterns like paths and keeps a readable source', () => {
    expect(pattern('/items/%4DLA/*').source).toBe('/items/MLA/*');
    expect(pattern('//categories/:id/').source).toBe('/categories/:id');
  });

  it('explains bad patterns', () => {
    expect(compilePathPattern('items')).toBe('it must start with "/"');
    expect(compilePathPattern('/items/MLA*')).toBe('"*" must be a whole segment, as in /items/*');
    expect(compilePathPattern('/items/:1d')).toBe('":1d" is not a parameter like :id');
    expect(compilePathPattern('/items?q')).toBe('a pattern matches the path only, without "?" or "#"');
    expect(compilePathPattern('/a b')).toBe('it must not contain spaces');
  });
});
