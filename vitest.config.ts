import { defineConfig } from 'vitest/config';

const INCLUDE = ['test/**/*.test.ts', 'test/**/*.test.tsx'];

/**
 * Suites whose assertions are about accuracy under concurrency or about when a timeout acts: they
 * run after all the others, one file at a time, so the rest of the suite does not compete with them
 * for the CPU (other load on the machine still may: their bounds allow for it).
 */
const SERIAL = [
  'test/limits-e2e/replicas.test.ts',
  'test/limits-e2e/workers-exact.test.ts',
  'test/limits-e2e/outage.test.ts',
  'test/hardening/slow-and-large.test.ts',
  'test/cli/shutdown.test.ts',
];

export default defineConfig({
  test: {
    globalSetup: ['test/support/secret-scan-global.ts', 'test/support/postgres-global.ts'],
    // Both only guard against hangs: a test that needs a bound on time asserts it itself.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The suites mostly wait on sockets, child processes and timers, not on the CPU: one file per core
    // (vitest's default) leaves a 2-core machine idle most of the run. The serial project below still
    // runs its files one at a time.
    maxWorkers: 3,
    coverage: {
      provider: 'v8',
      include: ['src/**'],
      reporter: ['text-summary', 'json-summary', 'html'],
      reportsDirectory: 'coverage',
    },
    projects: [
      { extends: true, test: { name: 'parallel', include: INCLUDE, exclude: SERIAL } },
      {
        extends: true,
        test: { name: 'serial', include: SERIAL, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
