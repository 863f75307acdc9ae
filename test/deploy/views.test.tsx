/** The two views: the ink one (ink-testing-library) and the plain one (injected stdout, fixed clock). */
import { EventEmitter } from 'node:events';
import { render } from 'ink-testing-library';
import { afterEach, describe, expect, it } from 'vitest';
import type { Failure } from '../../src/deploy/report.js';
import { formatElapsed } from '../../src/deploy/report.js';
import { DeployView, DeployViewStore, InkReporter, SPINNER_FRAMES } from '../../src/deploy/views/ink.js';
import { PlainReporter } from '../../src/deploy/views/plain.js';
import { Capture } from './cli-harness.js';

const STAGES = [
  { id: 'namespace', number: 1, title: 'namespace' },
  { id: 'database', number: 2, title: 'storage and database' },
  { id: 'migrate', number: 3, title: 'migration job complete' },
];

const FAILURE: Failure = {
  message: 'Job/meli-proxy-migrate failed (BackoffLimitExceeded).',
  ref: 'Job/meli-proxy-migrate',
  events: [
    '2025-01-01T10:00:02Z Warning BackOff Pod/meli-proxy-migrate-x7k2p: Back-off restarting failed container',
  ],
  logs: ['[pod/meli-proxy-migrate-x7k2p/migrate] error: password authentication failed'],
};

/** The frame without colour codes. */
function plain(frame: string | undefined): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences
  return (frame ?? '').replace(/\u001b\[[0-9;]*m/g, '');
}

function lineOf(frame: string, text: string): string {
  const line = frame.split('\n').find((item) => item.includes(text));
  if (!line) throw new Error(`no line with "${text}" in:\n${frame}`);
  return line;
}

const views: Array<ReturnType<typeof render>> = [];
afterEach(() => {
  for (const view of views.splice(0)) view.unmount();
});

describe('ink view', () => {
  it('shows pending stages, a spinner with a running clock, ticks and elapsed times', () => {
    let now = 100_000;
    const store = new DeployViewStore();
    store.update(() => ({
      title: 'Deploying to namespace meli-proxy',
      stages: STAGES.map((stage) => ({ ...stage, state: 'pending' as const })),
    }));
    const view = render(<DeployView store={store} now={() => now} />);
    views.push(view);

    let frame = plain(view.lastFrame());
    expect(frame).toContain('Deploying to namespace meli-proxy');
    expect(lineOf(frame, ' 1. namespace')).toMatch(/^○\s+1\. namespace/);

    store.updateStage('namespace', (stage) => ({ ...stage, state: 'done', elapsedMs: 850 }));
    store.updateStage('database', (stage) => ({
      ...stage,
      state: 'running',
      startedAt: now,
      note: 'waiting for rollout of StatefulSet/postgres',
    }));
    now += 12_300;
    view.rerender(<DeployView store={store} now={() => now} />);
    frame = plain(view.lastFrame());
    expect(lineOf(frame, ' 1. namespace')).toMatch(/^✔\s+1\. namespace\s+850ms/);
    const running = lineOf(frame, 'storage and database');
    expect(SPINNER_FRAMES).toContain(running[0]);
    expect(running).toContain('12.3s');
    expect(running).toContain('waiting for rollout of StatefulSet/postgres');
    expect(lineOf(frame, 'migration job complete')).toMatch(/^○/);
  });

  it('shows a cross, the failure with events and logs, and the end', () => {
    const store = new DeployViewStore();
    store.update(() => ({
      title: 'Deploying to namespace meli-proxy',
      stages: [
        { ...STAGES[0]!, state: 'done', elapsedMs: 400 },
        { ...STAGES[1]!, state: 'done', elapsedMs: 61_000 },
        { ...STAGES[2]!, state: 'failed', elapsedMs: 4_200 },
      ],
      failure: FAILURE,
      finished: { ok: false, elapsedMs: 65_600 },
    }));
    const view = render(<DeployView store={store} now={() => 0} />);
    views.push(view);
    const frame = plain(view.lastFrame());
    expect(lineOf(frame, 'storage and database')).toMatch(/^✔.*1m01s/);
    expect(lineOf(frame, 'migration job complete')).toMatch(/^✖.*4\.2s/);
    expect(frame).toContain('Job/meli-proxy-migrate failed (BackoffLimitExceeded).');
    expect(frame).toContain('Recent events of Job/meli-proxy-migrate and its pods:');
    // Long lines wrap at the terminal's width (100 columns here).
    expect(frame).toContain('Warning BackOff Pod/meli-proxy-migrate-x7k2p: Back-off restarting failed');
    expect(frame).toContain('Last log lines:');
    expect(frame).toContain('password authentication failed');
    expect(frame).toContain('Stopped after 1m05s.');
  });

  it('updates live from the store (no rerender call needed)', async () => {
    const store = new DeployViewStore();
    store.update(() => ({
      title: 'Destroying namespace meli-proxy',
      stages: [{ ...STAGES[0]!, state: 'pending' }],
    }));
    const view = render(<DeployView store={store} now={() => 0} />);
    views.push(view);
    store.updateStage('namespace', (stage) => ({ ...stage, state: 'done', elapsedMs: 1_500 }));
    store.update((state) => ({ ...state, finished: { ok: true, elapsedMs: 1_500 } }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const frame = plain(view.lastFrame());
    expect(lineOf(frame, ' 1. namespace')).toMatch(/^✔.*1\.5s/);
    expect(frame).toContain('Finished in 1.5s.');
  });
});

/** Enough of a terminal for ink: a width, resize events and write(). */
class FakeTerminal extends EventEmitter {
  columns = 120;
  rows = 40;
  isTTY = true;
  output = '';
  write(chunk: string): boolean {
    this.output += chunk;
    return true;
  }
}

describe('InkReporter', () => {
  it("draws the executor's events and leaves the final frame on screen", async () => {
    const terminal = new FakeTerminal();
    let now = 0;
    const reporter = new InkReporter(terminal as unknown as NodeJS.WriteStream, () => now);
    reporter.start('Deploying to namespace meli-proxy', STAGES);
    reporter.stageStarted('namespace');
    now = 300;
    reporter.stageDone('namespace', 300);
    reporter.stageStarted('database');
    now = 2_300;
    reporter.stageDone('database', 2_000);
    reporter.stageStarted('migrate');
    reporter.stageFailed('migrate', 4_200, FAILURE);
    await reporter.finish(false, 6_500);
    const screen = plain(terminal.output);
    expect(screen).toMatch(/✔\s+1\. namespace\s+300ms/);
    expect(screen).toMatch(/✔\s+2\. storage and database\s+2\.0s/);
    expect(screen).toMatch(/✖\s+3\. migration job complete\s+4\.2s/);
    expect(screen).toContain('Job/meli-proxy-migrate failed (BackoffLimitExceeded).');
    expect(screen).toContain('Stopped after 6.5s.');
  });
});

describe('plain view', () => {
  it('writes one timestamped line per event and the failure in full', async () => {
    const out = new Capture();
    let tick = 0;
    const reporter = new PlainReporter(out, () => new Date(Date.UTC(2025, 0, 1, 12, 0, tick++)));
    reporter.start('Deploying to namespace meli-proxy', STAGES);
    reporter.stageStarted('namespace');
    reporter.note('namespace', 'applying Namespace/meli-proxy');
    reporter.stageDone('namespace', 850);
    reporter.stageStarted('migrate');
    reporter.stageFailed('migrate', 4200, FAILURE);
    await reporter.finish(false, 5100);
    expect(out.text).toBe(
      [
        '2025-01-01T12:00:00.000Z Deploying to namespace meli-proxy: 3 stages',
        '2025-01-01T12:00:01.000Z [1/3] namespace: started',
        '2025-01-01T12:00:02.000Z [1/3] namespace: applying Namespace/meli-proxy',
        '2025-01-01T12:00:03.000Z [1/3] namespace: done in 850ms',
        '2025-01-01T12:00:04.000Z [3/3] migration job complete: started',
        '2025-01-01T12:00:05.000Z [3/3] migration job complete: FAILED after 4.2s: Job/meli-proxy-migrate failed (BackoffLimitExceeded).',
        '    Recent events of Job/meli-proxy-migrate and its pods:',
        '      2025-01-01T10:00:02Z Warning BackOff Pod/meli-proxy-migrate-x7k2p: Back-off restarting failed container',
        '    Last log lines:',
        '      [pod/meli-proxy-migrate-x7k2p/migrate] error: password authentication failed',
        '2025-01-01T12:00:06.000Z stopped after 5.1s',
        '',
      ].join('\n'),
    );
  });

  it('formats elapsed times', () => {
    expect([
      formatElapsed(0),
      formatElapsed(999),
      formatElapsed(1000),
      formatElapsed(59_949),
      formatElapsed(125_000),
    ]).toEqual(['0ms', '999ms', '1.0s', '59.9s', '2m05s']);
  });
});
