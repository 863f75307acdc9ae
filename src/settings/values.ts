/**
 * The kinds of value a setting can hold, as zod schemas that take what a config file, an
 * environment variable or a flag gives (a string, a number, a boolean, or a list from a file) and
 * return the value the code uses. Where the code has its own parser for a value (addresses, CIDR
 * ranges, loopback hosts), the schema calls that same parser, so what validation accepts is what
 * the server can use.
 *
 * A schema that knows why a value is wrong adds an issue marked with `detail` (see `refuse`); the
 * message then says "expected …; here …". Other failures are explained by the setting's `allowed`.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { parseIpRange } from '../limits/ip.js';
import { isLoopbackHost } from '../net/loopback.js';
import { availableCores } from './cores.js';

/** Refuses the value; a `detail` says why in the error message (never shown for a secret). */
function refuse(ctx: z.core.$RefinementCtx<unknown>, detail?: string): typeof z.NEVER {
  ctx.addIssue({ code: 'custom', message: detail ?? 'invalid', params: { detail: detail !== undefined } });
  return z.NEVER;
}

/** Any scalar as trimmed text: files give numbers and booleans, the environment and flags strings. */
export const text = z.union([z.string(), z.number(), z.boolean()]).transform((value) => String(value).trim());

export function integer(min: number, max: number) {
  return text
    .pipe(z.string().regex(/^-?\d+$/))
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds, as a bare integer or with a unit (`500ms`, `30s`, `5m`). */
export function duration(min: number, max: number) {
  return text
    .pipe(z.string().regex(/^\d+(ms|s|m|h|d)?$/))
    .transform((value) => {
      const [, digits, unit] = /^(\d+)(ms|s|m|h|d)?$/.exec(value) as RegExpExecArray;
      return Number(digits) * (DURATION_UNITS[unit ?? 'ms'] ?? 1);
    })
    .pipe(z.number().min(min).max(max));
}

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** Bytes, as a bare integer or with a binary unit (`512kb`, `64mb`, `1gb`). */
export function size(min: number, max: number) {
  return text
    .transform((value) => value.toLowerCase())
    .pipe(z.string().regex(/^\d+\s*(b|kb|mb|gb)?$/))
    .transform((value) => {
      const [, digits, unit] = /^(\d+)\s*(b|kb|mb|gb)?$/.exec(value) as RegExpExecArray;
      return Number(digits) * (SIZE_UNITS[unit ?? 'b'] ?? 1);
    })
    .pipe(z.number().int().min(min).max(max));
}

const SWITCH_WORDS: Record<string, boolean> = {
  on: true,
  true: true,
  yes: true,
  '1': true,
  off: false,
  false: false,
  no: false,
  '0': false,
};

/** on/off, true/false, yes/no, 1/0 (a bare optional-value flag arrives as `true`). */
export const onOff = text
  .transform((value) => value.toLowerCase())
  .pipe(z.enum(Object.keys(SWITCH_WORDS) as [string, ...string[]]))
  .transform((value) => SWITCH_WORDS[value] as boolean);

/** One of a few words, case-insensitive. */
export function oneOf<const T extends readonly [string, ...string[]]>(words: T) {
  return text.transform((value) => value.toLowerCase()).pipe(z.enum(words));
}

/** A text of at least `minLength` characters. */
export function nonEmpty(minLength: number) {
  return text.pipe(z.string().min(minLength));
}

/** A host name or address to listen on; URL brackets around IPv6 are dropped. */
export const hostname = text
  .pipe(z.string().regex(/^([A-Za-z0-9.:-]+|\[[0-9A-Fa-f:.]+\])$/))
  .transform((value) => value.replace(/^\[(.*)\]$/, '$1'));

/** A directory, absolute. */
export const directory = nonEmpty(1).transform((value) => resolve(value));

/** An http(s) URL without credentials or fragment: the common ground of every URL setting. */
export const httpUrl = text.transform((value, ctx): URL => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return refuse(ctx);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return refuse(ctx);
  if (url.username || url.password || url.hash) return refuse(ctx);
  return url;
});

/** The origin every request goes to: no path, no query. */
export const upstreamUrl = httpUrl.refine((url) => !url.search && url.pathname === '/');

/** Plain http only where nothing but this machine can listen in (test peers, local mirrors). */
export const endpointUrl = httpUrl.refine((url) => url.protocol === 'https:' || isLoopbackHost(url.hostname));

/** `embedded`, `memory`, or a PostgreSQL or Redis URL. */
export const storeUrl = text.refine((value) => {
  if (value === 'embedded' || value === 'memory') return true;
  if (!/^(postgres|postgresql|redis|rediss):\/\//.test(value)) return false;
  return URL.canParse(value);
});

/** Addresses or CIDR ranges, as a list (file) or comma-separated text, each checked by parseIpRange. */
export const cidrList = z
  .union([z.array(text), text.transform((value) => value.split(','))])
  .transform((items, ctx): string[] => {
    const list = items.map((item) => item.trim()).filter((item) => item.length > 0);
    for (const item of list) {
      const range = parseIpRange(item);
      if (typeof range === 'string') return refuse(ctx, `${JSON.stringify(item)}: ${range}`);
    }
    return list;
  });

const HOST_NAME = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/** A comma-separated list (or a file's array) of DNS names, each optionally starting with `*.`. */
export const hostNameList = z
  .union([z.array(text), text.transform((value) => value.split(','))])
  .transform((items, ctx): string[] => {
    const list = items.map((item) => item.trim().toLowerCase()).filter((item) => item.length > 0);
    for (const item of list) {
      if (!HOST_NAME.test(item)) return refuse(ctx, `${JSON.stringify(item)} is not a host name`);
    }
    return list;
  });

/** `auto` (one per core available to this process) or a count. */
export const workerCount = z.union([
  text.refine((value) => value.toLowerCase() === 'auto').transform(() => availableCores()),
  integer(1, 256),
]);

/** A MercadoLibre application id. */
export const applicationId = text.pipe(z.string().regex(/^[A-Za-z0-9._-]{1,200}$/));
