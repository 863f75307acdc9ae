/**
 * How a setting is declared (once, in the SETTINGS table of src/config.ts) and what is derived from
 * that declaration: its flag and environment variable names, its default, the type of its value,
 * and the parsing of a raw value into that type with an error message that names the setting, the
 * value, where it came from and what is allowed.
 */
import type { z } from 'zod';
import { UsageError } from '../errors.js';
import { maskUrl } from '../store/url.js';

type Env = NodeJS.ProcessEnv;

interface SettingText {
  /** Placeholder shown in --help after the flag, e.g. `<ms>`. */
  readonly arg: string;
  readonly description: string;
  /** Human description of the allowed values, used in every error message. */
  readonly allowed: string;
  /** Shown in --help and the reference instead of the default value (machine-dependent, units). */
  readonly defaultText?: string;
  /** Never echo the value (tokens, secrets, URLs that may hold a password). */
  readonly secret?: boolean;
  /** Only for names that do not follow from the key (kept as they were published). */
  readonly flag?: string;
  readonly env?: string;
}

/** A setting as declared with `setting()`: T is the type the code sees. */
export interface SettingSpec<T> extends SettingText {
  /** Turns a raw value (file: any scalar or list; environment and flags: text) into T. */
  readonly schema: z.ZodType<unknown, unknown>;
  readonly defaultValue: (env: Env) => T;
}

/** A declared setting with the names derived from its key. */
export interface Setting<T> extends SettingSpec<T> {
  readonly key: string;
  readonly flag: string;
  readonly env: string;
}

type Default<T> = T | ((env: Env) => T);

/**
 * Declares one setting. With a `default` the value is always set; without one it is
 * `undefined` until configured (e.g. secrets).
 */
export function setting<S extends z.ZodType<unknown, unknown>>(
  spec: SettingText & { schema: S; default: Default<NoInfer<z.output<S>>> },
): SettingSpec<z.output<S>>;
export function setting<S extends z.ZodType<unknown, unknown>>(
  spec: SettingText & { schema: S; default?: undefined },
): SettingSpec<z.output<S> | undefined>;
export function setting(
  spec: SettingText & { schema: z.ZodType<unknown, unknown>; default?: unknown },
): SettingSpec<unknown> {
  const { default: initial, ...rest } = spec;
  const defaultValue =
    typeof initial === 'function' ? (initial as (env: Env) => unknown) : () => initial as unknown;
  return { ...rest, defaultValue };
}

/** `upstreamTimeout` → `upstream-timeout`. */
function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** Adds each setting's key, its flag (`--upstream-timeout`) and variable (`MELI_PROXY_UPSTREAM_TIMEOUT`). */
export function declareSettings<T extends Record<string, SettingSpec<unknown>>>(
  table: T,
): { readonly [K in keyof T]: T[K] & Setting<SettingValue<T[K]>> } {
  const out: Record<string, Setting<unknown>> = {};
  for (const [key, spec] of Object.entries(table)) {
    out[key] = {
      ...spec,
      key,
      flag: spec.flag ?? `--${kebab(key)}`,
      env: spec.env ?? `MELI_PROXY_${kebab(key).replaceAll('-', '_').toUpperCase()}`,
    };
  }
  return out as { readonly [K in keyof T]: T[K] & Setting<SettingValue<T[K]>> };
}

/** The type of a declared setting's value. */
export type SettingValue<S> = S extends SettingSpec<infer T> ? T : never;

/** The value of one setting from one source, or a UsageError that says what is wrong and where. */
export function parseSettingValue(setting: Setting<unknown>, raw: unknown, source: string): unknown {
  const result = setting.schema.safeParse(raw);
  if (result.success) return result.data;
  // A URL given with credentials (`https://user:password@host`) is shown without them.
  const shown = setting.secret
    ? '(hidden)'
    : JSON.stringify(typeof raw === 'string' && raw.includes('@') ? maskUrl(raw) : raw);
  const detail = setting.secret
    ? undefined
    : result.error.issues.find((issue) => issue.code === 'custom' && issue.params?.detail === true)?.message;
  return invalidSetting(setting, `${shown} (from ${source})`, detail);
}

/** Throws the usage error for a refused value: `Invalid --flag VALUE (from SOURCE): expected ALLOWED.` */
export function invalidSetting(
  setting: SettingText & { flag: string },
  what: string,
  detail?: string,
): never {
  const here = detail === undefined ? '' : `; here ${detail}`;
  throw new UsageError(`Invalid ${setting.flag} ${what}: expected ${setting.allowed}${here}.`);
}

/** The default of a setting as --help and the reference show it. */
export function defaultShown(setting: SettingSpec<unknown>): string {
  if (setting.defaultText) return setting.defaultText;
  const value = setting.defaultValue({});
  return value === undefined ? '(none)' : String(value);
}
