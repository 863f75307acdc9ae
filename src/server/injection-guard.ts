/**
 * Who gets the injected MercadoLibre token (`serve --inject-token`). The token lets its holder act
 * as the seller, so the proxy adds it only to requests meant for it:
 *
 * - Client address (after --trust-proxy resolution) in --inject-clients, by default loopback and
 *   private ranges: a client from the internet reaching the port through an Ingress gets none.
 * - Host header: a DNS name must be localhost, a single label (`meli-proxy`), a cluster-local
 *   service name (`*.svc`, `*.svc.cluster.local`) or listed in --inject-hosts; any other name is
 *   refused with 421. A page on the internet that rebinds its own name to 127.0.0.1 makes the
 *   browser send that name as Host, so this is what stops DNS rebinding. IP literals pass (the
 *   browser then talks to an address, not to someone's name); a request without Host passes too.
 */
import { isIP } from 'node:net';
import { compileTrust } from './trusted-proxies.js';

export interface InjectionSettings {
  injectClients: readonly string[];
  injectHosts: readonly string[];
}

export interface HostRefusal {
  status: 421;
  error: 'misdirected_request';
  message: string;
}

export interface InjectionGuard {
  /** Whether a request from `clientIp` may carry the injected token. */
  allowsClient(clientIp: string): boolean;
  /** A refusal for a Host that names a foreign DNS name; undefined when it is acceptable. */
  refuseHost(host: string | undefined): HostRefusal | undefined;
}

const CLUSTER_SUFFIXES = ['.svc', '.svc.cluster.local', '.localhost'];

export function createInjectionGuard(settings: InjectionSettings): InjectionGuard {
  const clients = compileTrust(settings.injectClients);
  const exact = new Set<string>();
  const suffixes = [...CLUSTER_SUFFIXES];
  for (const name of settings.injectHosts) {
    if (name.startsWith('*.')) suffixes.push(name.slice(1));
    else exact.add(name);
  }
  const accepted = (name: string): boolean =>
    name === 'localhost' ||
    !name.includes('.') ||
    isIP(name) !== 0 ||
    exact.has(name) ||
    suffixes.some((suffix) => name.endsWith(suffix));
  // Hosts repeat (a handful per deployment); the bound keeps a spray of names from growing it.
  const seen = new Map<string, boolean>();
  return {
    allowsClient: clients,
    refuseHost(host) {
      if (host === undefined || host === '') return undefined;
      let ok = seen.get(host);
      if (ok === undefined) {
        ok = accepted(hostName(host));
        if (seen.size < 1024) seen.set(host, ok);
      }
      if (ok) return undefined;
      return {
        status: 421,
        error: 'misdirected_request',
        message:
          'This proxy adds the MercadoLibre token to requests and does not answer for this Host name. Use localhost, the service name, or a name listed in --inject-hosts.',
      };
    },
  };
}

/** The name part of a Host header, lower-cased, without port, brackets or a trailing dot. */
function hostName(host: string): string {
  const lower = host.trim().toLowerCase();
  if (lower.startsWith('[')) return lower.slice(1, lower.indexOf(']') >>> 0);
  const colon = lower.lastIndexOf(':');
  const name = colon >= 0 ? lower.slice(0, colon) : lower;
  return name.endsWith('.') ? name.slice(0, -1) : name;
}
