/** The view for logs and pipes: one timestamped line per event, failures in full. */
import type { Output } from '../../cli/io.js';
import { type DeployReporter, type Failure, formatElapsed, type StageHeader } from '../report.js';
import { formatFailure } from './text.js';

export class PlainReporter implements DeployReporter {
  private stages = new Map<string, StageHeader>();
  private total = 0;

  constructor(
    private readonly out: Output,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  private line(text: string): void {
    this.out.write(`${this.clock().toISOString()} ${text}\n`);
  }

  private label(id: string): string {
    const stage = this.stages.get(id);
    return stage ? `[${stage.number}/${this.total}] ${stage.title}` : id;
  }

  start(title: string, stages: readonly StageHeader[]): void {
    this.stages = new Map(stages.map((stage) => [stage.id, stage]));
    this.total = stages.length;
    this.line(`${title}: ${stages.length} stages`);
  }

  stageStarted(id: string): void {
    this.line(`${this.label(id)}: started`);
  }

  note(id: string, text: string): void {
    this.line(`${this.label(id)}: ${text}`);
  }

  stageDone(id: string, elapsedMs: number): void {
    this.line(`${this.label(id)}: done in ${formatElapsed(elapsedMs)}`);
  }

  stageFailed(id: string, elapsedMs: number, failure: Failure): void {
    const [message, ...rest] = formatFailure(failure);
    this.line(`${this.label(id)}: FAILED after ${formatElapsed(elapsedMs)}: ${message}`);
    for (const line of rest) this.out.write(`    ${line}\n`);
  }

  async finish(ok: boolean, elapsedMs: number): Promise<void> {
    this.line(ok ? `finished in ${formatElapsed(elapsedMs)}` : `stopped after ${formatElapsed(elapsedMs)}`);
  }
}
