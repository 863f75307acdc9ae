/**
 * The terminal view: every stage on its own line with a spinner while it runs, a tick or a cross
 * when it ends, and its elapsed time; the failure (events, logs) below the list.
 *
 * The executor pushes events into a small store; the component reads it with useSyncExternalStore,
 * so the same component renders a live deploy and, in tests, any state set up by hand.
 */
import { Box, render, Text } from 'ink';
import { useEffect, useState, useSyncExternalStore } from 'react';
import { type DeployReporter, type Failure, formatElapsed, type StageHeader } from '../report.js';
import { formatFailure } from './text.js';

export type StageState = 'pending' | 'running' | 'done' | 'failed';

export interface StageView extends StageHeader {
  state: StageState;
  startedAt?: number;
  elapsedMs?: number;
  note?: string;
}

export interface DeployViewState {
  title: string;
  stages: StageView[];
  failure?: Failure;
  finished?: { ok: boolean; elapsedMs: number };
}

export class DeployViewStore {
  private state: DeployViewState = { title: '', stages: [] };
  private readonly listeners = new Set<() => void>();

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getSnapshot = (): DeployViewState => this.state;

  /** Replaces the state (never mutates it: React compares snapshots by identity). */
  update(change: (state: DeployViewState) => DeployViewState): void {
    this.state = change(this.state);
    for (const listener of this.listeners) listener();
  }

  updateStage(id: string, change: (stage: StageView) => StageView): void {
    this.update((state) => ({
      ...state,
      stages: state.stages.map((stage) => (stage.id === id ? change(stage) : stage)),
    }));
  }
}

export const SPINNER_FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FRAME_MS = 80;

/** Re-renders every `ms` while `active`, for the spinner and the running clock. */
function useTicker(active: boolean, ms: number): void {
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(() => setTick((tick) => tick + 1), ms);
    return () => clearInterval(timer);
  }, [active, ms]);
}

function StageRow({ stage, now }: { stage: StageView; now: () => number }) {
  let mark = <Text dimColor>○</Text>;
  let elapsed = '';
  if (stage.state === 'running') {
    mark = <Text color="cyan">{SPINNER_FRAMES[Math.floor(now() / FRAME_MS) % SPINNER_FRAMES.length]}</Text>;
    elapsed = formatElapsed(now() - (stage.startedAt ?? now()));
  } else if (stage.state === 'done') {
    mark = <Text color="green">✔</Text>;
    elapsed = formatElapsed(stage.elapsedMs ?? 0);
  } else if (stage.state === 'failed') {
    mark = <Text color="red">✖</Text>;
    elapsed = formatElapsed(stage.elapsedMs ?? 0);
  }
  return (
    <Box>
      <Box flexShrink={0}>
        {mark}
        <Text dimColor={stage.state === 'pending'}>
          {` ${String(stage.number).padStart(2)}. ${stage.title.padEnd(28)}`}
        </Text>
        <Text>{elapsed.padStart(7)}</Text>
      </Box>
      {/* One line per stage: a long note is cut at the terminal's edge rather than wrapped. */}
      {stage.state === 'running' && stage.note ? (
        <Text dimColor wrap="truncate-end">{`  ${stage.note}`}</Text>
      ) : null}
    </Box>
  );
}

export function DeployView({ store, now = Date.now }: { store: DeployViewStore; now?: () => number }) {
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot);
  useTicker(
    state.stages.some((stage) => stage.state === 'running'),
    FRAME_MS,
  );
  return (
    <Box flexDirection="column">
      <Text bold>{state.title}</Text>
      {state.stages.map((stage) => (
        <StageRow key={stage.id} stage={stage} now={now} />
      ))}
      {state.failure ? (
        <Box flexDirection="column" marginTop={1}>
          {formatFailure(state.failure).map((line, index) => (
            // Lines are static once shown: the index is a stable key.
            // biome-ignore lint/suspicious/noArrayIndexKey: see above
            <Text key={index} color={index === 0 ? 'red' : undefined}>
              {line}
            </Text>
          ))}
        </Box>
      ) : null}
      {state.finished ? (
        <Text color={state.finished.ok ? 'green' : 'red'}>
          {state.finished.ok
            ? `Finished in ${formatElapsed(state.finished.elapsedMs)}.`
            : `Stopped after ${formatElapsed(state.finished.elapsedMs)}.`}
        </Text>
      ) : null}
    </Box>
  );
}

/** Feeds a DeployViewStore from executor events; `createView` draws it (ink's render by default). */
export class InkReporter implements DeployReporter {
  readonly store = new DeployViewStore();
  private view: { unmount(): void; waitUntilExit(): Promise<unknown> } | undefined;

  constructor(
    private readonly stdout: NodeJS.WriteStream,
    private readonly now: () => number = Date.now,
  ) {}

  start(title: string, stages: readonly StageHeader[]): void {
    this.store.update(() => ({ title, stages: stages.map((stage) => ({ ...stage, state: 'pending' })) }));
    this.view = render(<DeployView store={this.store} now={this.now} />, {
      stdout: this.stdout,
      patchConsole: false,
      exitOnCtrlC: true,
    });
  }

  stageStarted(id: string): void {
    const startedAt = this.now();
    this.store.updateStage(id, (stage) => ({ ...stage, state: 'running', startedAt }));
  }

  note(id: string, text: string): void {
    this.store.updateStage(id, (stage) => ({ ...stage, note: text }));
  }

  stageDone(id: string, elapsedMs: number): void {
    this.store.updateStage(id, (stage) => ({ ...stage, state: 'done', elapsedMs }));
  }

  stageFailed(id: string, elapsedMs: number, failure: Failure): void {
    this.store.updateStage(id, (stage) => ({ ...stage, state: 'failed', elapsedMs }));
    this.store.update((state) => ({ ...state, failure }));
  }

  async finish(ok: boolean, elapsedMs: number): Promise<void> {
    this.store.update((state) => ({ ...state, finished: { ok, elapsedMs } }));
    const view = this.view;
    if (!view) return;
    // React commits store updates asynchronously (batched): let it, so that unmounting draws the
    // final state, then restores the terminal.
    await new Promise((resolve) => setTimeout(resolve, 0));
    view.unmount();
    await view.waitUntilExit();
  }
}
