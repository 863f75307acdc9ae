/**
 * The statistics batch ids a process-local store has added, so that a batch sent again (its
 * first call timed out on the sender but was applied) is added once. A batch is only ever sent
 * again by the process that made it, while it lives and until one attempt succeeds, so ids are
 * kept for a bounded time and number, oldest forgotten first.
 */
export const BATCH_MEMORY_MS = 86_400_000;
const MAX_IDS = 100_000;

export class SeenBatches {
  /** id → when it was added; a Map iterates in insertion order, oldest first. */
  private readonly ids = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Records `id`; false when it was already recorded (the batch must not be added again). */
  claim(id: string): boolean {
    this.forgetOld();
    if (this.ids.has(id)) return false;
    this.ids.set(id, this.now());
    return true;
  }

  /** Takes back a claim whose rows could not be added after all. */
  release(id: string): void {
    this.ids.delete(id);
  }

  private forgetOld(): void {
    const oldest = this.now() - BATCH_MEMORY_MS;
    for (const [id, at] of this.ids) {
      if (at >= oldest && this.ids.size < MAX_IDS) break;
      this.ids.delete(id);
    }
  }
}
