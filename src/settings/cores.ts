/**
 * How many cores this process may really use: `os.availableParallelism()` (the CPUs it may run on),
 * capped by a cgroup CPU quota. Node 20 reports the node's cores inside a container limited to one
 * CPU, and one worker per node core there would only add context switches.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** The cgroup (v2, else v1) CPU quota in cores, rounded up; undefined when there is none. */
export function cgroupCpuLimit(
  read: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): number | undefined {
  const attempt = (path: string): string | undefined => {
    try {
      return read(path).trim();
    } catch {
      return undefined;
    }
  };
  const v2 = attempt('/sys/fs/cgroup/cpu.max');
  if (v2 !== undefined) {
    const [quota, period] = v2.split(/\s+/);
    if (quota === 'max' || quota === undefined) return undefined;
    return coresOf(Number(quota), Number(period ?? 100_000));
  }
  const quota = attempt('/sys/fs/cgroup/cpu/cpu.cfs_quota_us');
  const period = attempt('/sys/fs/cgroup/cpu/cpu.cfs_period_us');
  if (quota === undefined || period === undefined) return undefined;
  return coresOf(Number(quota), Number(period));
}

function coresOf(quota: number, period: number): number | undefined {
  if (!(quota > 0) || !(period > 0)) return undefined;
  return Math.max(1, Math.ceil(quota / period));
}

/** Cores available to this process: CPU affinity, capped by the container's CPU limit. */
export function availableCores(): number {
  const limit = cgroupCpuLimit();
  return Math.max(1, Math.min(availableParallelism(), limit ?? Number.POSITIVE_INFINITY));
}
