/**
 * The HTTPS origin's certificate: self-signed, made by openssl in the run's temp dir at start and
 * deleted with it (no key is ever committed). It names both `127.0.0.1` (an IP SAN, which Node
 * checks when it connects to https://127.0.0.1) and `localhost` (a DNS SAN, which nginx checks:
 * its `proxy_ssl_verify` matches host names only). Everyone that connects verifies it.
 */
import { join } from 'node:path';
import { run } from './processes.js';

export interface Certificate {
  /** PEM certificate, also the CA file clients trust (it is self-signed). */
  certFile: string;
  keyFile: string;
  /** ECDSA P-256, what the bench's TLS rows handshake with; the real upstream's key type may differ. */
  keyType: string;
}

export async function makeCertificate(openssl: string, dir: string): Promise<Certificate> {
  const certFile = join(dir, 'origin-cert.pem');
  const keyFile = join(dir, 'origin-key.pem');
  const args = [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ];
  const result = await run('openssl req', openssl, args, { timeoutMs: 20_000 });
  if (result.exit.code !== 0) {
    throw new Error(`openssl could not make the origin's certificate:\n${result.stderr}`);
  }
  return { certFile, keyFile, keyType: 'ECDSA P-256' };
}
