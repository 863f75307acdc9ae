/** `--workers auto`: one worker per core the process may use, within a container's CPU limit. */
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadConfig, SETTINGS } from '../../src/config.js';
import { availableCores, cgroupCpuLimit } from '../../src/settings/cores.js';

function files(contents: Record<string, string>): (path: string) => string {
  return (path) => {
    const text = contents[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return text;
  };
}

describe('available cores', () => {
  it('reads the CPU quota of cgroup v2 and v1, rounded up, and nothing when unlimited', () => {
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBeUndefined();
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' }))).toBe(2);
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': '50000 100000\n' }))).toBe(1);
    const v1 = (quota: string) =>
      files({
        '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': quota,
        '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000',
      });
    expect(cgroupCpuLimit(v1('-1'))).toBeUndefined();
    expect(cgroupCpuLimit(v1('400000'))).toBe(4);
    expect(cgroupCpuLimit(files({}))).toBeUndefined();
  });

  it('gives `--workers auto` (the default) at least one and at most the CPUs this process may run on', () => {
    const cores = availableCores();
    expect(cores).toBeGreaterThanOrEqual(1);
    expect(cores).toBeLessThanOrEqual(availableParallelism());
    expect(loadConfig({ env: {}, flags: { workers: 'auto' } }).workers).toBe(cores);
    expect(loadConfig({ env: { MELI_PROXY_WORKERS: '3' }, flags: {} }).workers).toBe(3);
    // The default is auto: one serving process per usable core, as nginx's `worker_processes auto`.
    expect(loadConfig({ env: {}, flags: {} }).workers).toBe(cores);
    expect(SETTINGS.workers.defaultText).toBe('auto');
    expect(() => loadConfig({ env: {}, flags: { workers: '0' } })).toThrow(
      /Invalid --workers "0" \(from flag --workers\): expected an integer from 1 to 256, or auto/,
    );
  });
});
