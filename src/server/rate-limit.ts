import type { IncomingMessage } from 'node:http';
import type { Decision } from '../limits/index.js';

/** The rate-limit step of the proxy route: one synchronous decision per request. */
export interface RateLimitGate {
  /** The decision for a request, or undefined when no rule applies. Never waits on the store. */
  decide(
    req: IncomingMessage,
    clientIp: string,
    method: string,
    normalizedPath: string,
  ): Decision | undefined;
  /** Response headers (flat name/value list) describing a decision. */
  headers(decision: Decision): string[];
}
