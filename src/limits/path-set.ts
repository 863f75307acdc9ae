/**
 * The path patterns of one rule, matched as a set. A handful are tried one by one (matchPath, no
 * allocation); more go into a trie of segments, walked once along the request path, so the cost
 * grows with the depth of the path and not with the number of patterns. In the trie every node sits
 * at one depth and consumes one segment, so a walk visits each node at most once even when literal
 * and `:param` branches both apply.
 */
import { LITERAL, matchPath, ONE, type PathPattern, REST } from './path.js';

/** Up to this many patterns are scanned: a scan allocates nothing, the trie one string per segment. */
const SCAN_LIMIT = 8;

interface Node {
  literals: Map<string, Node> | undefined;
  /** A `:param` or inner `*`: any one segment. */
  any: Node | undefined;
  /** Some pattern ends here with a final `*`: one or more further segments. */
  rest: boolean;
  /** Some pattern ends here. */
  end: boolean;
}

function node(): Node {
  return { literals: undefined, any: undefined, rest: false, end: false };
}

export class PathSet {
  private readonly scan: readonly PathPattern[] | undefined;
  private readonly root: Node | undefined;

  constructor(patterns: readonly PathPattern[]) {
    if (patterns.length <= SCAN_LIMIT) {
      this.scan = patterns;
      return;
    }
    const root = node();
    for (const pattern of patterns) insert(root, pattern);
    this.root = root;
  }

  /** Whether a normalised path (see normalizePath) matches any of the patterns. */
  matches(path: string): boolean {
    const scan = this.scan;
    if (scan !== undefined) {
      for (let i = 0; i < scan.length; i++) if (matchPath(scan[i] as PathPattern, path)) return true;
      return false;
    }
    return walk(this.root as Node, path, 1);
  }
}

function insert(root: Node, pattern: PathPattern): void {
  let at = root;
  for (let i = 0; i < pattern.kinds.length; i++) {
    const kind = pattern.kinds[i];
    if (kind === REST) {
      at.rest = true;
      return;
    }
    if (kind === ONE) {
      at.any ??= node();
      at = at.any;
    } else if (kind === LITERAL) {
      at.literals ??= new Map();
      const literal = pattern.literals[i] as string;
      let next = at.literals.get(literal);
      if (next === undefined) {
        next = node();
        at.literals.set(literal, next);
      }
      at = next;
    }
  }
  at.end = true;
}

/** Mirrors matchPath: `pos` is where the next segment starts; a trailing slash ends the path. */
function walk(at: Node, path: string, pos: number): boolean {
  const length = path.length;
  if (pos >= length) return at.end;
  let end = path.indexOf('/', pos);
  if (end < 0) end = length;
  if (end === pos) return false;
  if (at.rest) return true;
  if (at.literals !== undefined) {
    const next = at.literals.get(path.slice(pos, end));
    if (next !== undefined && walk(next, path, end + 1)) return true;
  }
  return at.any !== undefined && walk(at.any, path, end + 1);
}
