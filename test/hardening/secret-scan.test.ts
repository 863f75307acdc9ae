/**
 * The secret scan that ends every run (secret-scan-global.ts): it finds a registered secret in any
 * captured log, as written or percent-encoded, and reports the file and the secret's name only.
 * And the capture itself: what this run's in-process proxies and CLI children log is recorded.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { startOrigin } from '../peers/origin.js';
import { httpRequest } from '../support/net.js';
import { startTestProxy } from '../support/proxy.js';
import { scanForSecrets, TEST_SECRETS } from '../support/secrets.js';

describe('secret scan', () => {
  it('finds fixed and registered secrets, plain or percent-encoded, and names them without their values', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'meli-secret-scan-'));
    try {
      mkdirSync(path.join(dir, 'logs'));
      const registered = 'dyn secret/with+chars=1';
      writeFileSync(
        path.join(dir, 'secrets-1.jsonl'),
        `${JSON.stringify({ name: 'issued token', value: registered })}\n`,
      );
      writeFileSync(path.join(dir, 'logs', 'clean.log'), '{"msg":"request","url":"/items/MLA1"}\n');
      writeFileSync(
        path.join(dir, 'logs', 'leaky.log'),
        `{"msg":"oops","auth":"Bearer ${TEST_SECRETS.adminToken}"}\n`,
      );
      writeFileSync(
        path.join(dir, 'logs', 'encoded.log'),
        `{"msg":"request","url":"/x?t=${encodeURIComponent(registered)}"}\n`,
      );
      const { files, findings } = scanForSecrets(dir);
      expect(files).toBe(3);
      expect(findings.sort((a, b) => a.file.localeCompare(b.file))).toEqual([
        { file: path.join('logs', 'encoded.log'), secret: 'issued token' },
        { file: path.join('logs', 'leaky.log'), secret: 'adminToken' },
      ]);
      expect(JSON.stringify(findings)).not.toContain(TEST_SECRETS.adminToken);
      expect(JSON.stringify(findings)).not.toContain(registered);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const runDir = (() => {
    try {
      return inject('secretScanDir');
    } catch {
      return undefined;
    }
  })();

  it.skipIf(!runDir)('records what an in-process proxy logs in this run, for the final scan', async () => {
    const origin = await startOrigin();
    const proxy = await startTestProxy({ upstream: origin.url, adminToken: TEST_SECRETS.adminToken });
    try {
      await httpRequest(proxy.url, `/items/MLA1?access_token=${TEST_SECRETS.queryToken}`, {
        headers: { authorization: `Bearer ${TEST_SECRETS.bearerToken}` },
      });
      await httpRequest(proxy.adminUrl, '/admin/status', {
        headers: { authorization: `Bearer ${TEST_SECRETS.wrongAdminToken}` },
      });
    } finally {
      await proxy.close();
      await origin.close();
    }
    await new Promise((resolve) => setImmediate(resolve));
    const logs = path.join(runDir!, 'logs');
    const mine = readdirSync(logs).filter((file) => file.startsWith('secret-scan-logger-'));
    expect(mine.length).toBeGreaterThan(0);
    const text = mine.map((file) => readFileSync(path.join(logs, file), 'utf8')).join('');
    expect(text).toContain('"msg":"proxy listening"');
    expect(text).toContain('access_token=[redacted]');
  });
});
