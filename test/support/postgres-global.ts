/**
 * Vitest global setup: one PostgreSQL server for the whole run. Its admin URL reaches the test
 * files as `inject('postgresUrl')`; each file then creates its own database with testDatabase()
 * (see postgres.ts), so files stay isolated while paying for initdb only once.
 */
import type { TestProject } from 'vitest/node';
import { startPostgres } from './postgres.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  project.provide('postgresUrl', server.url);
  return () => server.stop();
}
