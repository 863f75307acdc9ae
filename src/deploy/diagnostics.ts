/**
 * What to show when a stage fails: the failing object's recent events (and those of its pods and
 * ReplicaSets, where scheduling, image pulls and admission refusals show up) and the tail of its
 * pods' logs. Best effort: a diagnostic that cannot be fetched says so and never hides the failure.
 */
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { isRecord } from './manifests.js';

export interface DiagnosticTarget {
  objectKind: string;
  name: string;
  /** Label selector of its pods, when it has pods. */
  selector: string | undefined;
}

export interface Diagnostics {
  events: string[];
  logs: string[];
}

export const MAX_EVENTS = 15;
export const LOG_TAIL_LINES = 30;

interface EventRecord {
  time: string;
  type: string;
  reason: string;
  object: string;
  message: string;
  count: number;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function parseItems(stdout: string): Record<string, unknown>[] {
  try {
    const parsed: unknown = JSON.parse(stdout);
    if (isRecord(parsed) && Array.isArray(parsed.items)) return parsed.items.filter(isRecord);
  } catch {
    // Not JSON: nothing to show.
  }
  return [];
}

async function podNames(run: RunKubectl, namespace: string, selector: string): Promise<string[]> {
  const result = await run({
    args: ['get', 'pods', '--namespace', namespace, '--selector', selector, '--output', 'json'],
  });
  if (result.exitCode !== 0) return [];
  return parseItems(result.stdout)
    .map((pod) => (isRecord(pod.metadata) ? text(pod.metadata.name) : ''))
    .filter((name) => name.length > 0);
}

function belongsTo(target: DiagnosticTarget, pods: ReadonlySet<string>, kind: string, name: string): boolean {
  if (kind === target.objectKind && name === target.name) return true;
  if (kind === 'Pod' && pods.has(name)) return true;
  // A Deployment's ReplicaSets are `<deployment>-<template hash>`: refused pod creations appear there.
  return target.objectKind === 'Deployment' && kind === 'ReplicaSet' && name.startsWith(`${target.name}-`);
}

export function formatEvent(event: EventRecord): string {
  const repeated = event.count > 1 ? ` (x${event.count})` : '';
  return `${event.time} ${event.type} ${event.reason} ${event.object}: ${event.message}${repeated}`;
}

export async function collectEvents(
  run: RunKubectl,
  namespace: string,
  target: DiagnosticTarget,
  pods: readonly string[],
): Promise<string[]> {
  const result = await run({ args: ['get', 'events', '--namespace', namespace, '--output', 'json'] });
  if (result.exitCode !== 0) return [`(events unavailable: ${firstErrorLine(result)})`];
  const podSet = new Set(pods);
  const events: EventRecord[] = [];
  for (const item of parseItems(result.stdout)) {
    const involved = isRecord(item.involvedObject) ? item.involvedObject : {};
    const kind = text(involved.kind);
    const name = text(involved.name);
    if (!belongsTo(target, podSet, kind, name)) continue;
    events.push({
      time: text(item.lastTimestamp) || text(item.eventTime) || text(item.firstTimestamp),
      type: text(item.type) || 'Normal',
      reason: text(item.reason),
      object: `${kind}/${name}`,
      message: text(item.message).trim(),
      count: typeof item.count === 'number' ? item.count : 1,
    });
  }
  // ISO-8601 timestamps sort as strings.
  events.sort((a, b) => a.time.localeCompare(b.time));
  return events.slice(-MAX_EVENTS).map(formatEvent);
}

export async function collectLogs(run: RunKubectl, namespace: string, selector: string): Promise<string[]> {
  const result = await run({
    args: [
      'logs',
      '--namespace',
      namespace,
      '--selector',
      selector,
      '--all-containers',
      '--prefix',
      `--tail=${LOG_TAIL_LINES}`,
      '--max-log-requests=5',
    ],
  });
  if (result.exitCode !== 0) return [`(logs unavailable: ${firstErrorLine(result)})`];
  const lines = result.stdout.split('\n').filter((line) => line.trim().length > 0);
  return lines.length > 0 ? lines.slice(-LOG_TAIL_LINES * 2) : ['(no log lines)'];
}

export async function collectDiagnostics(
  run: RunKubectl,
  namespace: string,
  target: DiagnosticTarget,
): Promise<Diagnostics> {
  try {
    const pods = target.selector ? await podNames(run, namespace, target.selector) : [];
    const events = await collectEvents(run, namespace, target, pods);
    const logs = target.selector ? await collectLogs(run, namespace, target.selector) : [];
    return { events, logs };
  } catch (error) {
    return { events: [`(diagnostics unavailable: ${(error as Error).message})`], logs: [] };
  }
}
