import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';

/** MercadoLibre's own error body shape, so clients handle our errors like the API's. */
export interface ApiErrorBody {
  message: string;
  error: string;
  status: number;
  cause: unknown[];
}

export function apiErrorBody(status: number, error: string, message: string): string {
  const body: ApiErrorBody = { message, error, status, cause: [] };
  return JSON.stringify(body);
}

/**
 * Sets the status and JSON content type of an API error on a Fastify reply and returns its body:
 * send it, or return it from an async handler.
 */
export function apiErrorReply(reply: FastifyReply, status: number, error: string, message: string): string {
  reply.code(status).header('content-type', 'application/json; charset=utf-8');
  return apiErrorBody(status, error, message);
}

/**
 * Writes an error on a raw response and returns its body's length in bytes (what the statistics
 * and the access log count); a response whose headers already left is cut instead (0 bytes).
 */
export function sendApiError(
  res: ServerResponse,
  status: number,
  error: string,
  message: string,
  extraHeaders?: readonly string[],
): number {
  if (res.headersSent) {
    res.destroy();
    return 0;
  }
  const body = apiErrorBody(status, error, message);
  const bytes = Buffer.byteLength(body);
  const headers = [
    'content-type',
    'application/json; charset=utf-8',
    'content-length',
    String(bytes),
    'cache-control',
    'no-store',
  ];
  if (extraHeaders) headers.push(...extraHeaders);
  res.writeHead(status, headers);
  res.end(body);
  return bytes;
}
