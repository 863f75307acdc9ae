/**
 * How many upstream requests each client address has in flight, held to a cap, so that one client
 * (slow uploads, unread responses, a flood of connections) cannot take the whole upstream pool.
 */
export class ClientSlots {
  private readonly held = new Map<string, number>();

  /** `limit` 0: no cap (nothing is counted). */
  constructor(readonly limit: number) {}

  /** Takes a slot for `client`; false when it holds `limit` already. */
  acquire(client: string): boolean {
    if (this.limit === 0) return true;
    const count = this.held.get(client) ?? 0;
    if (count >= this.limit) return false;
    this.held.set(client, count + 1);
    return true;
  }

  release(client: string): void {
    if (this.limit === 0) return;
    const count = this.held.get(client) ?? 0;
    if (count <= 1) this.held.delete(client);
    else this.held.set(client, count - 1);
  }

  /** Slots `client` holds now. */
  heldBy(client: string): number {
    return this.held.get(client) ?? 0;
  }
}
