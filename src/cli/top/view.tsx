/**
 * The live terminal view of `meli-proxy top`: headline rates, a 60-second sparkline and the top
 * routes, client IPs and rules side by side. It reads a TopStore (fed by the poller in index.tsx)
 * through useSyncExternalStore, so tests can render any state; `q` or Esc calls onQuit.
 */
import { Box, Text, useInput, useStdin, useStdout } from 'ink';
import { useSyncExternalStore } from 'react';
import { formatCount, formatUtc, sparkline } from '../stats-format.js';
import { headline, sections, type TopSection, type TopSummary } from './summary.js';

export interface TopViewState {
  adminUrl: string;
  summary?: TopSummary;
  /** The last refresh failed: shown until one succeeds. */
  error?: string;
  /** Refreshes so far. */
  refreshes: number;
}

export class TopStore {
  private state: TopViewState;
  private readonly listeners = new Set<() => void>();

  constructor(adminUrl: string) {
    this.state = { adminUrl, refreshes: 0 };
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getSnapshot = (): TopViewState => this.state;

  /** A successful refresh. */
  show(summary: TopSummary): void {
    this.set({ adminUrl: this.state.adminUrl, summary, refreshes: this.state.refreshes + 1 });
  }

  /** A failed refresh: the last numbers stay, with the error under them. */
  fail(message: string): void {
    this.set({ ...this.state, error: message, refreshes: this.state.refreshes + 1 });
  }

  private set(state: TopViewState): void {
    this.state = state;
    for (const listener of this.listeners) listener();
  }
}

/** Cuts text to `width` characters, with an ellipsis when it was longer. */
function clip(text: string, width: number): string {
  if (width <= 1) return text.slice(0, Math.max(0, width));
  return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}

function SectionBox({ section, width }: { section: TopSection; width: number }) {
  const countWidth = Math.max(
    section.countHeader.length,
    ...section.entries.map((e) => formatCount(e.requests).length),
  );
  const keyWidth = Math.max(4, width - countWidth - 2);
  return (
    <Box flexDirection="column" width={width} marginRight={2}>
      <Text bold color="cyan">
        {`${clip(section.title, keyWidth).padEnd(keyWidth)}  ${section.countHeader.padStart(countWidth)}`}
      </Text>
      {section.entries.length === 0 ? (
        <Text dimColor>{section.empty}</Text>
      ) : (
        section.entries.map((entry) => (
          <Text key={entry.key}>
            {`${clip(entry.key, keyWidth).padEnd(keyWidth)}  ${formatCount(entry.requests).padStart(countWidth)}`}
          </Text>
        ))
      )}
    </Box>
  );
}

function Headline({ summary }: { summary: TopSummary }) {
  return (
    <Box>
      {headline(summary).map(([label, value]) => {
        const alarming =
          (label === '5xx' && summary.errorRate > 0.01) ||
          (label === '429/s' && summary.rateLimitedPerSecond > 0);
        return (
          <Box key={label} marginRight={3}>
            <Text dimColor>{`${label} `}</Text>
            <Text bold color={alarming ? 'red' : 'green'}>
              {value}
            </Text>
          </Box>
        );
      })}
      <Text dimColor>{`(last ${summary.windowSeconds} s)`}</Text>
    </Box>
  );
}

export interface TopViewProps {
  store: TopStore;
  onQuit: () => void;
}

export function TopView({ store, onQuit }: TopViewProps) {
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot);
  const { isRawModeSupported } = useStdin();
  const { stdout } = useStdout();
  useInput(
    (input, key) => {
      if (input === 'q' || input === 'Q' || key.escape) onQuit();
    },
    { isActive: isRawModeSupported },
  );
  const columns = Math.max(60, Math.min(stdout.columns || 100, 160));
  const sectionWidth = Math.floor((columns - 6) / 3);
  const summary = state.summary;

  return (
    <Box flexDirection="column">
      <Box>
        <Text bold>meli-proxy top</Text>
        <Text dimColor>{`  ${state.adminUrl}`}</Text>
        {summary ? <Text dimColor>{`  ${formatUtc(new Date(summary.at))}`}</Text> : null}
        <Text dimColor>{isRawModeSupported ? '   q: quit' : '   Ctrl-C: quit'}</Text>
      </Box>
      {summary ? (
        <>
          <Headline summary={summary} />
          <Box>
            {/* Requests per second over the last minute: 60 + the minute's count, within 80 columns. */}
            <Text color="green">{sparkline(summary.series)}</Text>
            <Text dimColor>{` ${formatCount(summary.requestsLastMinute)}/min`}</Text>
          </Box>
          <Box marginTop={1}>
            {sections(summary).map((section) => (
              <SectionBox key={section.title} section={section} width={sectionWidth} />
            ))}
          </Box>
        </>
      ) : (
        <Text dimColor>waiting for the first numbers…</Text>
      )}
      {state.error ? <Text color="red">{state.error}</Text> : null}
    </Box>
  );
}
