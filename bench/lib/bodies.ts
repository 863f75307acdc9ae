/**
 * Response bodies of the realistic rows: JSON shaped like MercadoLibre's item and search answers
 * (same fields and nesting, invented values), of an exact size, and their gzip encodings. Values
 * come from a seeded generator, so the bodies are the same on every run and compress like real
 * listings do (varied titles, ids and prices) rather than like one record repeated.
 */
import { gzipSync } from 'node:zlib';
import { BENCH_PATH, BODY } from './body.js';

export type BodyId = '1k' | '16k' | '64k';

export interface BenchBody {
  id: BodyId;
  /** The request path the origin serves this body on (any query string is ignored). */
  path: string;
  /** The origin's file name: nginx serves it, and `<file>.gz` to clients that accept gzip. */
  file: string;
  plain: Buffer;
  gzip: Buffer;
}

/** A small deterministic generator (mulberry32): the same bodies on every run and machine. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [
  'Funda',
  'Silicona',
  'Cargador',
  'Rápido',
  'Cable',
  'USB-C',
  'Auriculares',
  'Bluetooth',
  'Vidrio',
  'Templado',
  'Samsung',
  'Motorola',
  'Xiaomi',
  'iPhone',
  'Galaxy',
  'Redmi',
  'Soporte',
  'Auto',
  'Magnético',
  'Original',
  'Negro',
  'Azul',
  'Transparente',
  'Reforzada',
  'Antigolpe',
  'Pack',
  'Inalámbrico',
  '20W',
  'Tipo',
  'Plus',
  'Ultra',
  'Pro',
];

function listing(random: () => number, index: number) {
  const pick = () => WORDS[Math.floor(random() * WORDS.length)]!;
  const id = `MLA${1_100_000_000 + Math.floor(random() * 899_999_999)}`;
  const title = Array.from({ length: 4 + Math.floor(random() * 5) }, pick).join(' ');
  const price = Math.round(random() * 90_000 + 900);
  const seller = 100_000_000 + Math.floor(random() * 900_000_000);
  return {
    id,
    site_id: 'MLA',
    title,
    seller: { id: seller, nickname: `VENDEDOR${seller % 100_000}`, power_seller_status: 'gold' },
    price,
    original_price: random() < 0.3 ? Math.round(price * 1.2) : null,
    currency_id: 'ARS',
    available_quantity: Math.floor(random() * 500),
    sold_quantity: Math.floor(random() * 5000),
    buying_mode: 'buy_it_now',
    listing_type_id: random() < 0.5 ? 'gold_special' : 'gold_pro',
    condition: random() < 0.9 ? 'new' : 'used',
    permalink: `https://articulo.mercadolibre.com.ar/${id.slice(0, 3)}-${id.slice(3)}-${title.toLowerCase().replace(/\s+/g, '-')}-_JM`,
    thumbnail: `https://http2.mlstatic.com/D_${Math.floor(random() * 1e9)}-MLA${Math.floor(random() * 1e8)}_0${index % 10}2024-I.jpg`,
    accepts_mercadopago: true,
    installments: {
      quantity: [3, 6, 12][index % 3],
      amount: Math.round(price / 6),
      rate: 0,
      currency_id: 'ARS',
    },
    address: {
      state_id: 'AR-C',
      state_name: 'Capital Federal',
      city_name: random() < 0.5 ? 'Palermo' : 'Almagro',
    },
    shipping: {
      free_shipping: random() < 0.6,
      mode: 'me2',
      logistic_type: 'fulfillment',
      store_pick_up: false,
    },
    attributes: [
      { id: 'BRAND', name: 'Marca', value_name: pick() },
      { id: 'MODEL', name: 'Modelo', value_name: `${pick()} ${Math.floor(random() * 30)}` },
      { id: 'ITEM_CONDITION', name: 'Condición del ítem', value_name: 'Nuevo' },
    ],
    category_id: 'MLA5338',
    catalog_listing: random() < 0.2,
  };
}

/**
 * A search-results document (`/sites/MLA/search` shape) of exactly `bytes` bytes: as many listings
 * as fit, then trailing whitespace (valid JSON) to the exact size.
 */
function searchBody(bytes: number, seed: number): Buffer {
  const random = generator(seed);
  const doc = {
    site_id: 'MLA',
    query: 'funda celular',
    paging: { total: 412538, primary_results: 1000, offset: 0, limit: 0 },
    results: [] as unknown[],
    sort: { id: 'relevance', name: 'Más relevantes' },
    available_filters: [{ id: 'condition', name: 'Condición', type: 'text' }],
  };
  let json = JSON.stringify(doc);
  for (let i = 0; ; i++) {
    const next = listing(random, i);
    doc.results.push(next);
    doc.paging.limit = doc.results.length;
    const candidate = JSON.stringify(doc);
    if (Buffer.byteLength(candidate) >= bytes) {
      doc.results.pop();
      doc.paging.limit = doc.results.length;
      json = JSON.stringify(doc);
      break;
    }
    json = candidate;
  }
  const size = Buffer.byteLength(json);
  return Buffer.from(`${json}${' '.repeat(bytes - size - 1)}\n`);
}

function bench(id: BodyId, path: string, file: string, plain: Buffer): BenchBody {
  // zlib's default level: the ratio an API compressing on the fly typically ships.
  return { id, path, file, plain, gzip: gzipSync(plain, { level: 6 }) };
}

/** Every body the origin serves, by id. */
export const BODIES: Record<BodyId, BenchBody> = {
  '1k': bench('1k', BENCH_PATH, 'category.json', BODY),
  '16k': bench('16k', '/sites/MLA/search?q=funda&limit=16', 'search-16k.json', searchBody(16 * 1024, 16)),
  '64k': bench('64k', '/sites/MLB/search?q=funda&limit=50', 'search-64k.json', searchBody(64 * 1024, 64)),
};
