/**
 * Request/response calls over a Node IPC channel (`process.send` in a cluster worker,
 * `worker.send` in the primary): each call carries an id, the answer comes back with the same id,
 * and a call that gets no answer within its timeout rejects. Both ends can call and answer, so one
 * peer per channel serves the shared store (worker → primary) and the aggregation of metrics and
 * live statistics (primary → workers).
 *
 * Messages are tagged so that anything else on the channel is ignored. The cluster must use
 * `serialization: 'advanced'` (structured clone): counter totals travel as a Map.
 */
import { StoreUnavailableError } from './errors.js';

export const IPC_TAG = 'meli-proxy/ipc';

interface CallMessage {
  tag: typeof IPC_TAG;
  kind: 'call';
  id: number;
  op: string;
  args: unknown[];
}

interface ReplyMessage {
  tag: typeof IPC_TAG;
  kind: 'reply';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: { name: string; message: string; code?: string };
}

type Message = CallMessage | ReplyMessage;

/** The part of a ChildProcess, cluster Worker or `process` a peer needs. */
export interface IpcChannel {
  send(message: unknown, callback?: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export type IpcHandler = (...args: never[]) => unknown;

/** An error raised on the other side, rebuilt here with its name, message and code. */
export class IpcRemoteError extends Error {
  constructor(
    name: string,
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = name;
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

function isMessage(value: unknown): value is Message {
  return typeof value === 'object' && value !== null && (value as { tag?: unknown }).tag === IPC_TAG;
}

export class IpcPeer {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, IpcHandler>();
  private closed = false;

  constructor(
    private readonly channel: IpcChannel,
    /** Names the other side in errors, e.g. "the primary process" or "worker 2". */
    private readonly remoteName: string,
    private readonly defaultTimeoutMs = 5000,
  ) {
    channel.on('message', this.onMessage);
  }

  /** Answers calls to `op` with what `handler` returns (or throws). */
  handle(op: string, handler: IpcHandler): this {
    this.handlers.set(op, handler);
    return this;
  }

  /** Calls `op` on the other side; rejects with StoreUnavailableError when it cannot answer in time. */
  call<T>(op: string, args: unknown[] = [], timeoutMs = this.defaultTimeoutMs): Promise<T> {
    if (this.closed) return Promise.reject(this.unavailable(op, 'the channel is closed'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(this.unavailable(op, `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      const message: CallMessage = { tag: IPC_TAG, kind: 'call', id, op, args };
      this.send(message, (error) => {
        if (!error) return;
        const waiting = this.pending.get(id);
        if (!waiting) return;
        clearTimeout(waiting.timer);
        this.pending.delete(id);
        waiting.reject(this.unavailable(op, error.message));
      });
    });
  }

  /** Fails every call in flight (the other side went away) and stops listening. */
  close(reason = 'the channel closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.off('message', this.onMessage);
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(this.unavailable(`call ${id}`, reason));
    }
    this.pending.clear();
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private unavailable(op: string, why: string): StoreUnavailableError {
    return new StoreUnavailableError(`${this.remoteName} did not answer ${op}: ${why}`);
  }

  private send(message: Message, callback?: (error: Error | null) => void): void {
    try {
      this.channel.send(message, callback ?? (() => undefined));
    } catch (error) {
      // Sending on a channel that is closing throws synchronously (ERR_IPC_CHANNEL_CLOSED).
      callback?.(error as Error);
    }
  }

  private readonly onMessage = (message: unknown): void => {
    if (!isMessage(message)) return;
    if (message.kind === 'reply') {
      const waiting = this.pending.get(message.id);
      if (!waiting) return; // timed out already
      clearTimeout(waiting.timer);
      this.pending.delete(message.id);
      if (message.ok) waiting.resolve(message.value);
      else {
        const error = message.error ?? { name: 'Error', message: 'unknown error' };
        waiting.reject(new IpcRemoteError(error.name, error.message, error.code));
      }
      return;
    }
    void this.answer(message);
  };

  private async answer(call: CallMessage): Promise<void> {
    let reply: ReplyMessage;
    try {
      const handler = this.handlers.get(call.op);
      if (!handler) throw new Error(`unknown operation ${call.op}`);
      const value = await (handler as (...args: unknown[]) => unknown)(...call.args);
      reply = { tag: IPC_TAG, kind: 'reply', id: call.id, ok: true, value };
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      const code = (e as NodeJS.ErrnoException).code;
      reply = {
        tag: IPC_TAG,
        kind: 'reply',
        id: call.id,
        ok: false,
        error: { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) },
      };
    }
    if (!this.closed) this.send(reply);
  }
}
