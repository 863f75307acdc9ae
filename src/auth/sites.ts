/**
 * MercadoLibre's sites and where each one's users authorize an application. MercadoLibre publishes
 * no OAuth discovery document, so these endpoints are written down here, once.
 *
 * The authorization page lives on the site's own domain; the token endpoint and the API are the
 * same for every site.
 */

export interface Site {
  /** MercadoLibre's site id, e.g. MLA. */
  id: string;
  country: string;
  /** The authorization endpoint users of this site log in at. */
  authorizationUrl: string;
}

/** MercadoLibre's token endpoint, shared by every site. */
export const TOKEN_URL = 'https://api.mercadolibre.com/oauth/token';
/** MercadoLibre's API, for `/users/me`. */
export const API_URL = 'https://api.mercadolibre.com';
export const DEFAULT_SITE = 'MLA';

function site(id: string, country: string, domain: string): Site {
  return { id, country, authorizationUrl: `https://auth.${domain}/authorization` };
}

export const SITES: readonly Site[] = [
  site('MLA', 'Argentina', 'mercadolibre.com.ar'),
  site('MLB', 'Brasil', 'mercadolivre.com.br'),
  site('MLM', 'México', 'mercadolibre.com.mx'),
  site('MLC', 'Chile', 'mercadolibre.cl'),
  site('MCO', 'Colombia', 'mercadolibre.com.co'),
  site('MLU', 'Uruguay', 'mercadolibre.com.uy'),
  site('MPE', 'Perú', 'mercadolibre.com.pe'),
  site('MLV', 'Venezuela', 'mercadolibre.com.ve'),
  site('MEC', 'Ecuador', 'mercadolibre.com.ec'),
  site('MPA', 'Panamá', 'mercadolibre.com.pa'),
  site('MCR', 'Costa Rica', 'mercadolibre.co.cr'),
  site('MRD', 'República Dominicana', 'mercadolibre.com.do'),
  site('MBO', 'Bolivia', 'mercadolibre.com.bo'),
  site('MPY', 'Paraguay', 'mercadolibre.com.py'),
  site('MGT', 'Guatemala', 'mercadolibre.com.gt'),
  site('MHN', 'Honduras', 'mercadolibre.com.hn'),
  site('MNI', 'Nicaragua', 'mercadolibre.com.ni'),
  site('MSV', 'El Salvador', 'mercadolibre.com.sv'),
];

/** The site with this id (case-insensitive), or undefined. */
export function findSite(id: string): Site | undefined {
  const wanted = id.trim().toUpperCase();
  return SITES.find((candidate) => candidate.id === wanted);
}

/** "MLA (Argentina), MLB (Brasil), …" for error messages and help. */
export function describeSites(): string {
  return SITES.map((candidate) => `${candidate.id} (${candidate.country})`).join(', ');
}
