/**
 * A throwaway self-signed certificate for an `https://localhost:PORT/…` redirect URI.
 *
 * node:crypto makes keys but not X.509 certificates, so this asks the `openssl` command (present
 * wherever Node's own OpenSSL tooling is; on PATH on Debian, macOS and Git for Windows). The
 * alternative is the `selfsigned` npm package (5.x, Node ≥ 18, pulls in @peculiar/x509 and pkijs);
 * swapping it in only changes this file. The key never touches the disk: it comes back on stdout.
 */
import { execFile } from 'node:child_process';
import { RuntimeFailure } from '../errors.js';

export interface TlsPair {
  key: string;
  cert: string;
}

export interface SelfSignedOptions {
  /** Host names and addresses the certificate is for. Default localhost, 127.0.0.1 and ::1. */
  hosts?: readonly string[];
  /** The openssl executable. Default `openssl` from PATH. */
  openssl?: string;
}

export async function createSelfSignedCertificate(options: SelfSignedOptions = {}): Promise<TlsPair> {
  const hosts = options.hosts ?? ['localhost', '127.0.0.1', '::1'];
  const altNames = hosts.map((host) => (/^[\d.]+$|:/.test(host) ? `IP:${host}` : `DNS:${host}`)).join(',');
  const args = [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=meli-proxy login callback',
    '-addext',
    `subjectAltName=${altNames}`,
    '-keyout',
    '-',
  ];
  const output = await new Promise<string>((resolve, reject) => {
    execFile(options.openssl ?? 'openssl', args, { timeout: 15_000 }, (error, stdout) => {
      if (error) reject(error);
      else resolve(stdout);
    });
  }).catch((error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'the openssl command is not installed' : 'openssl failed';
    throw new RuntimeFailure(
      `Cannot create a certificate for the https:// redirect URI: ${reason}. Install openssl, or use --paste (the browser's redirect then only needs to show its URL).`,
    );
  });
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(output)?.[0];
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(output)?.[0];
  if (!key || !cert) {
    throw new RuntimeFailure(
      'Cannot create a certificate for the https:// redirect URI: openssl printed no key or certificate.',
    );
  }
  return { key: `${key}\n`, cert: `${cert}\n` };
}
