/**
 * One node-redis connection per Redis store, shared by documents, counters and health checks.
 *
 * Every wait is bounded: opening (TCP connect plus handshake), each call (`bound`), and calls made
 * while the connection is down are refused at once (no offline queue) instead of piling up. After
 * an outage the client reconnects in the background with a capped backoff. A call that times out
 * on a connection that claims to be ready means the server or the path to it stopped answering
 * (a frozen server, a half-open TCP connection after a failover): that connection is dropped and a
 * new one is made, since the old one may otherwise hang until the kernel gives up on it.
 * 'error' events are always handled (an unhandled one would crash the process) and logged at most
 * once per few seconds.
 */
import { ClientClosedError, ClientOfflineError, createClient, DisconnectsClientError } from 'redis';
import { errorMessage } from './errors.js';
import type { StoreLogger } from './logger.js';
import { ADD_STATS_BATCH_SCRIPT, SYNC_COUNTERS_SCRIPT } from './redis-scripts.js';
import { withTimeout } from './timeout.js';

export interface RedisConnectionTuning {
  /** Bound on opening the store, and on each TCP connect when reconnecting. Default 2000 ms. */
  connectTimeoutMs: number;
  /** Bound on one call (one round trip; a listing bounds each page). Default 2000 ms. */
  commandTimeoutMs: number;
  /** Longest wait between two reconnection attempts. Default 2000 ms. */
  reconnectMaxDelayMs: number;
}

export const DEFAULT_REDIS_CONNECTION_TUNING: RedisConnectionTuning = {
  connectTimeoutMs: 2000,
  commandTimeoutMs: 2000,
  reconnectMaxDelayMs: 2000,
};

/** Lost-connection warnings arrive once per reconnection attempt: log one per this interval. */
const WARN_INTERVAL_MS = 5000;

function newClient(
  url: string,
  tuning: RedisConnectionTuning,
  reconnectDelay: (retries: number) => number | false,
) {
  return createClient({
    url,
    name: 'meli-proxy',
    RESP: 2, // the default, made explicit: replies are typed for RESP 2
    scripts: { syncCounters: SYNC_COUNTERS_SCRIPT, addStatsBatch: ADD_STATS_BATCH_SCRIPT },
    // Refuse commands while disconnected: callers get an error at once and retry on their own
    // schedule, rather than a queue that grows during an outage and floods the server after it.
    disableOfflineQueue: true,
    // Also bounds how long a command may wait to be written (e.g. behind a full socket buffer).
    commandOptions: { timeout: tuning.commandTimeoutMs },
    // Redis Enterprise maintenance hand-offs: not used, and they cost a DNS lookup per connect.
    maintNotifications: 'disabled',
    socket: {
      connectTimeout: tuning.connectTimeoutMs,
      reconnectStrategy: (retries) => reconnectDelay(retries),
    },
  });
}

export type RedisClient = ReturnType<typeof newClient>;

export class RedisConnection {
  private current: RedisClient;
  private closed = false;
  /** Once a connection was ready, losing it means reconnecting; before that, failing to open. */
  private everReady = false;
  private lastWarning = 0;
  private outage = false;

  constructor(
    private readonly url: string,
    readonly displayUrl: string,
    readonly tuning: RedisConnectionTuning,
    private readonly logger: StoreLogger,
  ) {
    this.current = this.create();
  }

  /** Connects, or throws the reason (refused, timed out, wrong password…) and leaves nothing open. */
  async open(): Promise<void> {
    const client = this.current;
    const connecting = client.connect();
    try {
      await withTimeout(
        connecting,
        this.tuning.connectTimeoutMs,
        `no answer within ${this.tuning.connectTimeoutMs} ms`,
      );
    } catch (error) {
      this.closed = true;
      connecting.catch(() => undefined);
      destroyQuietly(client);
      throw error;
    }
  }

  /** The client to send commands on; throws once the store is closed. */
  client(): RedisClient {
    if (this.closed) throw new Error(`the store ${this.displayUrl} is closed`);
    return this.current;
  }

  /**
   * Runs `work` within `ms` (default: the command timeout). A timeout on a ready connection drops
   * it for a new one; errors of a connection that is down say so in plain words.
   */
  async bound<T>(work: (client: RedisClient) => Promise<T>, ms = this.tuning.commandTimeoutMs): Promise<T> {
    const client = this.client();
    const message = `Redis ${this.displayUrl} did not answer within ${ms} ms`;
    try {
      return await withTimeout(work(client), ms, message);
    } catch (error) {
      if (error instanceof Error && error.message === message) this.replace(client, ms);
      throw this.explain(error);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const client = this.current;
    if (!client.isOpen) return;
    // close() lets replies in flight arrive; a server that stopped answering must not hold it up.
    await withTimeout(client.close(), this.tuning.commandTimeoutMs, 'close timed out').catch(() =>
      destroyQuietly(client),
    );
  }

  private create(): RedisClient {
    const client = newClient(this.url, this.tuning, (retries) => {
      if (!this.everReady || this.closed) return false;
      const backoff = Math.min(50 * 2 ** Math.min(retries, 16), this.tuning.reconnectMaxDelayMs);
      return Math.round(backoff * (0.8 + Math.random() * 0.2));
    });
    client.on('error', (error: unknown) => {
      if (!this.everReady || this.closed) return; // open() reports it; after close() nobody cares
      this.outage = true;
      const now = Date.now();
      if (now - this.lastWarning < WARN_INTERVAL_MS) return;
      this.lastWarning = now;
      this.logger.warn(
        { err: errorMessage(error), store: this.displayUrl },
        'lost the Redis connection; reconnecting in the background',
      );
    });
    client.on('ready', () => {
      this.everReady = true;
      if (!this.outage) return;
      this.outage = false;
      this.lastWarning = 0;
      this.logger.info({ store: this.displayUrl }, 'reconnected to Redis');
    });
    return client;
  }

  private replace(stale: RedisClient, ms: number): void {
    if (this.closed || stale !== this.current || !stale.isReady) return;
    this.logger.warn(
      { store: this.displayUrl, timeoutMs: ms },
      'Redis stopped answering; dropping the connection and opening a new one',
    );
    this.outage = true;
    this.current = this.create();
    this.current.connect().catch(() => undefined);
    destroyQuietly(stale);
  }

  private explain(error: unknown): unknown {
    if (
      error instanceof ClientOfflineError ||
      error instanceof ClientClosedError ||
      error instanceof DisconnectsClientError
    ) {
      const state = this.closed ? 'is closed' : 'is not connected (reconnecting in the background)';
      return new Error(`Redis ${this.displayUrl} ${state}: ${error.message}`, { cause: error });
    }
    return error;
  }
}

function destroyQuietly(client: RedisClient): void {
  try {
    client.destroy();
  } catch {
    // Already closed.
  }
}
