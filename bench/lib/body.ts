/**
 * The origin's response body: a synthetic document shaped like MercadoLibre's
 * `GET /categories/MLA97994` (same fields and nesting, invented values), exactly 1024 bytes.
 */

export const BENCH_PATH = '/categories/MLA97994';
export const BODY_BYTES = 1024;

const category = {
  id: 'MLA97994',
  name: 'Accesorios para Celulares',
  picture: 'https://http2.mlstatic.com/storage/categories-api/images/bench-category.png',
  permalink: 'https://www.mercadolibre.com.ar/accesorios-celulares/_Deal_b',
  total_items_in_this_category: 412538,
  path_from_root: [
    { id: 'MLA1051', name: 'Celulares y Teléfonos' },
    { id: 'MLA97994', name: 'Accesorios para Celulares' },
  ],
  children_categories: [{ id: 'MLA5338', name: 'Fundas', total_items_in_this_category: 140112 }],
  attribute_types: 'attributes',
  settings: {
    adult_content: false,
    buying_allowed: true,
    buying_modes: ['buy_it_now'],
    catalog_domain: 'MLA-CELLPHONE_ACCESSORIES',
    currencies: ['ARS'],
    immediate_payment: 'required',
    item_conditions: ['not_specified', 'used', 'new'],
    listing_allowed: false,
    max_pictures_per_item: 12,
    maximum_price: null,
    shipping_options: ['custom', 'carrier'],
    status: 'enabled',
  },
  channels_settings: [{ channel: 'mshops', settings: { minimum_price: 0 } }],
  meta_categ_id: null,
  attributable: false,
  date_created: '2018-04-25T08:12:56.000Z',
};

function build(): Buffer {
  const json = JSON.stringify(category);
  const size = Buffer.byteLength(json);
  if (size >= BODY_BYTES) throw new Error(`bench body is ${size} bytes, more than ${BODY_BYTES}: trim it`);
  // Trailing whitespace is valid JSON and keeps the size exact without inventing fields.
  return Buffer.from(`${json}${' '.repeat(BODY_BYTES - size - 1)}\n`);
}

/** The exact bytes every origin serves and every target must return unchanged. */
export const BODY: Buffer = build();
