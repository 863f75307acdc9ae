/** Text shared by both views and by `--dry-run` / `deploy status`. */
import type { Plan } from '../plan.js';
import type { PrerequisiteStatus } from '../prerequisites.js';
import type { Failure } from '../report.js';
import type { Health, StageStatus } from '../status.js';
import { describeWait } from '../waits.js';

/** The ordered plan: stage, then kind/name of each object and what the stage waits for. */
export function formatPlan(plan: Plan, heading: string): string {
  const lines = [heading];
  for (const stage of plan.stages) {
    lines.push(`${String(stage.number).padStart(2)}. ${stage.title}`);
    if (stage.entries.length === 0 && stage.waits.length === 0) lines.push('      (nothing)');
    for (const entry of stage.entries)
      lines.push(`      ${entry.ref}${entry.note ? `  (${entry.note})` : ''}`);
    for (const wait of stage.waits) lines.push(`      wait: ${describeWait(wait)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The failure block: message, recent events, last log lines. */
export function formatFailure(failure: Failure): string[] {
  const lines = [failure.message];
  // A single line of output is already in the message.
  if (failure.output && failure.output.length > 1) {
    lines.push('kubectl said:');
    for (const line of failure.output) lines.push(`  ${line}`);
  }
  if (failure.events.length > 0) {
    lines.push(`Recent events${failure.ref ? ` of ${failure.ref} and its pods` : ''}:`);
    for (const event of failure.events) lines.push(`  ${event}`);
  } else if (failure.ref) {
    lines.push(`No recent events of ${failure.ref}.`);
  }
  if (failure.logs.length > 0) {
    lines.push('Last log lines:');
    for (const line of failure.logs) lines.push(`  ${line}`);
  }
  return lines;
}

export const HEALTH_MARK: Record<Health, string> = {
  ready: '✔',
  present: '✔',
  progressing: '…',
  missing: '○',
  failed: '✖',
};

export function formatStatus(stages: readonly StageStatus[], heading: string): string {
  const lines = [heading];
  const titleWidth = Math.max(...stages.map((stage) => stage.title.length));
  const refWidth = Math.max(
    0,
    ...stages.flatMap((stage) => stage.objects.map((object) => object.ref.length)),
  );
  for (const stage of stages) {
    const health = stage.objects.length === 0 ? 'ready' : stage.health;
    const label = stage.objects.length === 0 ? '(nothing)' : health;
    lines.push(
      `${HEALTH_MARK[health]} ${String(stage.number).padStart(2)}. ${stage.title.padEnd(titleWidth)}  ${label}`,
    );
    for (const object of stage.objects) {
      const detail = object.detail ? `  ${object.detail}` : '';
      lines.push(`      ${object.ref.padEnd(refWidth)}  ${object.health}${detail}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The cluster's prerequisites, each with its install command when missing. */
export function formatPrerequisites(statuses: readonly PrerequisiteStatus[]): string {
  if (statuses.length === 0) return '';
  const lines = ['Prerequisites:'];
  for (const status of statuses) {
    lines.push(`${status.ok ? '✔' : '✖'} ${status.name}: ${status.detail}`);
    if (!status.ok) lines.push(`      install: ${status.install}`);
  }
  return `${lines.join('\n')}\n`;
}
