/**
 * Random trace and span ids for traces this proxy starts. Drawn from a pooled random buffer so a
 * request costs a slice of it, not a call into the random source.
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let offset = POOL_BYTES;

function take(bytes: number): string {
  if (offset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const start = offset;
  offset += bytes;
  // An all-zero id is invalid; 2^-64 at worst, but cheap to rule out.
  for (let i = start; i < offset; i++) if (pool[i] !== 0) return pool.toString('hex', start, offset);
  return take(bytes);
}

/** 16 random bytes as 32 lower-case hex characters. */
export function newTraceId(): string {
  return take(16);
}

/** 8 random bytes as 16 lower-case hex characters. */
export function newSpanId(): string {
  return take(8);
}
