/**
 * Shared by the hardening suites:
 *
 *   exchange(url, bytes, opts)   sends raw bytes on a fresh connection and reads every response
 *                                until the server closes it (or a quiet period passes): what a
 *                                hostile client would see, including anything after a refusal
 *   expectApiError(res, status)  the body is MercadoLibre's error shape with that status
 *   settle(ms)                   lets in-flight forwarding reach (or not reach) the origin
 */
import { expect } from 'vitest';
import { ConnectionClosedError, RawConnection, type RawOptions, type RawResponse } from '../support/net.js';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Lets a request that was (wrongly) forwarded arrive at the origin before asserting it did not. */
export const settle = (ms = 100) => sleep(ms);

export interface Exchange {
  responses: RawResponse[];
  /** The server closed the connection (as opposed to leaving it open past the quiet period). */
  closed: boolean;
  /** Bytes received after the last complete response (a half-written answer, or nothing). */
  rest: Buffer;
}

/** Sends `data`, then reads responses until the connection closes or `quietMs` passes without one. */
export async function exchange(
  url: string,
  data: string | Buffer,
  options: RawOptions & { quietMs?: number } = {},
): Promise<Exchange> {
  const connection = await RawConnection.open(url, options);
  const responses: RawResponse[] = [];
  let rest: Buffer = Buffer.alloc(0);
  try {
    await connection
      .send(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
      .catch(() => undefined);
    for (;;) {
      try {
        responses.push(await connection.readResponse({ timeoutMs: options.quietMs ?? 1000 }));
      } catch (error) {
        if (error instanceof ConnectionClosedError) rest = error.received;
        else if (!/timed out/.test((error as Error).message)) throw error;
        break;
      }
      if (connection.closed && connection.pending.length === 0) break;
    }
    return { responses, closed: connection.closed, rest };
  } finally {
    connection.close();
  }
}

const API_ERROR_KEYS = ['cause', 'error', 'message', 'status'];

/** MercadoLibre's error body: exactly {message, error, status, cause: []}, status as given. */
export function expectApiError(response: RawResponse | undefined, status: number): void {
  expect(response, `expected a ${status} response`).toBeDefined();
  expect(response!.status).toBe(status);
  expect(response!.headers['content-type']).toMatch(/^application\/json/);
  const body = JSON.parse(response!.body.toString('utf8')) as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(API_ERROR_KEYS);
  expect(body).toMatchObject({ status, cause: [] });
}
