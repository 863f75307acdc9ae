/**
 * The key ring that seals the stored token (AES-256-GCM from node:crypto).
 *
 * Keys come from MELI_PROXY_TOKEN_KEY or from the file named by --token-key-file (never both): a
 * list of keys separated by commas, spaces or new lines, each 32 random bytes in base64. The first
 * key seals; every key in the list may open, which is how a key is rotated (put the new key first,
 * keep the old one after it until `meli-proxy auth rotate-key` has resealed the token).
 *
 * A key's id is derived from the key itself, so a ring never needs an id written next to a key and
 * a sealed document names the key that opens it without revealing anything about the key.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

export const TOKEN_KEY_ENV = 'MELI_PROXY_TOKEN_KEY';

/** How an operator makes a key, quoted in every message that asks for one. */
export const MAKE_A_KEY = `export ${TOKEN_KEY_ENV}="$(openssl rand -base64 32)"`;

const KEY_BYTES = 32;
const IV_BYTES = 12;

export interface TokenKey {
  id: string;
  secret: Buffer;
}

/** What a sealed token document holds besides the clear fields the compare-and-set reads. */
export interface SealedPayload {
  keyId: string;
  iv: string;
  tag: string;
  data: string;
}

export class TokenKeyRing {
  private readonly byId: Map<string, TokenKey>;

  constructor(readonly keys: readonly TokenKey[]) {
    if (keys.length === 0) throw new Error('a key ring needs at least one key');
    this.byId = new Map(keys.map((key) => [key.id, key]));
  }

  /** The key that seals. */
  get current(): TokenKey {
    return this.keys[0]!;
  }

  has(keyId: string): boolean {
    return this.byId.has(keyId);
  }

  /** Encrypts `plain`; `context` (the clear fields) is authenticated with it, so it cannot be swapped. */
  seal(plain: string, context: string): SealedPayload {
    const key = this.current;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key.secret, iv);
    cipher.setAAD(Buffer.from(aad(context, key.id)));
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return {
      keyId: key.id,
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      data: data.toString('base64'),
    };
  }

  /** Decrypts; undefined when no key of the ring has this id. Throws when the document was altered. */
  open(sealed: SealedPayload, context: string): string | undefined {
    const key = this.byId.get(sealed.keyId);
    if (!key) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', key.secret, Buffer.from(sealed.iv, 'base64'));
    decipher.setAAD(Buffer.from(aad(context, key.id)));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]).toString(
      'utf8',
    );
  }
}

function aad(context: string, keyId: string): string {
  return `meli-proxy token|${context}|${keyId}`;
}

export function keyId(secret: Buffer): string {
  return createHash('sha256').update('meli-proxy token key id|').update(secret).digest('hex').slice(0, 12);
}

/** Parses a ring; `where` names the source in errors (never the value). */
export function parseKeyRing(text: string, where: string): TokenKeyRing {
  const items = text.split(/[\s,]+/).filter((item) => item.length > 0);
  if (items.length === 0) {
    throw new UsageError(`${where} holds no key. Make one with: ${MAKE_A_KEY}`);
  }
  const keys = items.map((item, index) => {
    const secret = /^[A-Za-z0-9+/_-]+={0,2}$/.test(item) ? Buffer.from(item, 'base64') : Buffer.alloc(0);
    if (secret.length !== KEY_BYTES) {
      throw new UsageError(
        `${where}: key ${index + 1} is not ${KEY_BYTES} bytes in base64. Make one with: ${MAKE_A_KEY}`,
      );
    }
    return { id: keyId(secret), secret };
  });
  return new TokenKeyRing(keys);
}

export interface KeySettings {
  tokenKeyFile: string | undefined;
}

/** The ring from the environment or the key file; undefined when neither is set. */
export function loadKeyRing(settings: KeySettings, env: NodeJS.ProcessEnv): TokenKeyRing | undefined {
  const fromEnv = env[TOKEN_KEY_ENV];
  const file = settings.tokenKeyFile;
  if (fromEnv && file) {
    throw new UsageError(
      `Both ${TOKEN_KEY_ENV} and --token-key-file are set: give the token key one way only.`,
    );
  }
  if (fromEnv) return parseKeyRing(fromEnv, `environment variable ${TOKEN_KEY_ENV}`);
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(`Cannot read --token-key-file ${file} (${code}).`);
  }
  return parseKeyRing(text, `--token-key-file ${file}`);
}
