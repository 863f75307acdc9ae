/**
 * Turns request paths into route templates (`/items/MLA123` → `/items/:id`) for metric labels and
 * statistics. Labels must stay bounded whatever clients send: known MercadoLibre resources have
 * templates, other paths fall back to their first segment, and past `maxRoutes` distinct labels
 * everything new is reported as `/other`.
 */
import { compilePathPattern, matchPath, type PathPattern } from '../limits/index.js';

/** MercadoLibre's public resources; more specific templates before more general ones. */
export const BUILT_IN_ROUTES: readonly string[] = [
  '/sites',
  '/sites/:site',
  '/sites/:site/search',
  '/sites/:site/categories',
  '/sites/:site/listing_types',
  '/sites/:site/listing_types/:type',
  '/sites/:site/listing_prices',
  '/sites/:site/domain_discovery/search',
  '/sites/:site/category_predictor/predict',
  '/sites/:site/payment_methods',
  '/sites/:site/shipping_methods',
  '/sites/:site/*',
  '/categories/:id',
  '/categories/:id/attributes',
  '/categories/:id/sale_terms',
  '/categories/:id/*',
  '/items',
  '/items/:id',
  '/items/:id/description',
  '/items/:id/descriptions',
  '/items/:id/pictures',
  '/items/:id/variations',
  '/items/:id/variations/:variation',
  '/items/:id/shipping_options',
  '/items/:id/prices',
  '/items/:id/sale_price',
  '/items/:id/*',
  '/users/me',
  '/users/:id',
  '/users/:id/items/search',
  '/users/:id/addresses',
  '/users/:id/accepted_payment_methods',
  '/users/:id/*',
  '/orders/search',
  '/orders/:id',
  '/orders/:id/*',
  '/questions/search',
  '/questions/:id',
  '/answers',
  '/my/received_questions/search',
  '/shipments/:id',
  '/shipments/:id/*',
  '/currencies',
  '/currencies/:id',
  '/currency_conversions/search',
  '/countries',
  '/countries/:id',
  '/states/:id',
  '/cities/:id',
  '/classified_locations/*',
  '/trends/:site',
  '/trends/:site/:category',
  '/reviews/item/:id',
  '/products/search',
  '/products/:id',
  '/products/:id/*',
  '/highlights/:site/:kind/:id',
  '/oauth/token',
];

export const OTHER_ROUTE = '/other';
const FALLBACK_SEGMENT = /^[a-z][a-z_-]{0,39}$/;

export interface RouteTableOptions {
  /** Templates from the configuration, tried before the built-in ones. */
  extra?: readonly string[];
  /** Most distinct labels ever reported (built-ins included), by every process together. */
  maxRoutes?: number;
  /**
   * Processes (workers of `serve --workers N`) each holding a table of their own: they share the
   * room left after the templates, so the labels of all of them together stay within maxRoutes.
   */
  processes?: number;
}

export class RouteTable {
  private readonly byFirstSegment = new Map<string, Array<{ pattern: PathPattern; id: number }>>();
  private readonly labels: string[] = [];
  private readonly idByLabel = new Map<string, number>();
  private readonly maxRoutes: number;
  /** Labels this table may add beyond its templates (first segments of unknown paths). */
  private readonly roomForFallbacks: number;
  private readonly templateCount: number;
  readonly otherId: number;
  readonly rootId: number;

  constructor(options: RouteTableOptions = {}) {
    this.maxRoutes = options.maxRoutes ?? 256;
    this.otherId = this.labelId(OTHER_ROUTE, true);
    this.rootId = this.labelId('/', true);
    for (const template of [...(options.extra ?? []), ...BUILT_IN_ROUTES]) {
      const pattern = compilePathPattern(template);
      if (typeof pattern === 'string') throw new Error(`route template "${template}": ${pattern}`);
      const first = firstSegment(pattern.source);
      let list = this.byFirstSegment.get(first);
      if (!list) {
        list = [];
        this.byFirstSegment.set(first, list);
      }
      // Configured and built-in templates always get their own label; the cap bounds the fallbacks.
      list.push({ pattern, id: this.labelId(pattern.source, true) });
    }
    this.templateCount = this.labels.length;
    const processes = Math.max(1, options.processes ?? 1);
    this.roomForFallbacks = Math.max(0, Math.floor((this.maxRoutes - this.templateCount) / processes));
  }

  /** The route id of a normalised path: an index usable in typed arrays. */
  idOf(path: string): number {
    if (path === '/' || path.length === 0) return this.rootId;
    const first = firstSegment(path);
    const candidates = this.byFirstSegment.get(first);
    if (candidates) {
      for (const candidate of candidates) if (matchPath(candidate.pattern, path)) return candidate.id;
    }
    if (!FALLBACK_SEGMENT.test(first)) return this.otherId;
    const rest = path.length > first.length + 1;
    return this.labelId(rest ? `/${first}/*` : `/${first}`);
  }

  label(id: number): string {
    return this.labels[id] ?? OTHER_ROUTE;
  }

  get size(): number {
    return this.labels.length;
  }

  get capacity(): number {
    return this.maxRoutes;
  }

  private labelId(label: string, always = false): number {
    const known = this.idByLabel.get(label);
    if (known !== undefined) return known;
    if (!always && this.labels.length - this.templateCount >= this.roomForFallbacks) return this.otherId;
    const id = this.labels.length;
    this.labels.push(label);
    this.idByLabel.set(label, id);
    return id;
  }
}

function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return end === -1 ? path.slice(1) : path.slice(1, end);
}
