export { CounterSync, type CounterSyncOptions } from './counter-sync.js';
export { ENV_GLOBAL, ENV_PER_IP, rulesFromEnv, startupRules } from './env.js';
export { RuleError } from './errors.js';
export {
  formatList,
  formatPolicyItem,
  formatRateLimitItem,
  type HeaderOptions,
  rateLimitHeaderList,
  rateLimitHeaders,
  sfString,
} from './headers.js';
export { canonicalIp, type IpRange, parseIpInto, parseIpRange } from './ip.js';
export {
  LeaseArbiter,
  type LeaseArbiterOptions,
  type LeaseAsk,
  type LeaseGrant,
  type LeaseReclaim,
  type LeaseReturn,
  type LeaseTransport,
} from './lease-arbiter.js';
export { LeaseClient, type LeaseClientOptions } from './lease-client.js';
export {
  type Decision,
  type ExactTake,
  LEASE_PENDING,
  type LeaseOptions,
  type LeaseRequest,
  Limiter,
  type LimiterOptions,
  type LimiterStats,
  type PendingDelta,
  type RuleStats,
  type RuleUsage,
  type SharingOptions,
  STORE_PENDING,
} from './limiter.js';
export type { LimitRequest, RuleInfo } from './matcher.js';
export { compilePathPattern, matchPath, normalizePath, type PathPattern } from './path.js';
export {
  MAX_BURST,
  type PartitionKey,
  parseRule,
  parseRules,
  type Rule,
  type RuleCounting,
  type RuleMatch,
  type RuleMode,
  serializeRule,
} from './rule.js';
export { bearerTokenHash, hashToken } from './token.js';
export { formatLimit, LIMIT_EXPECTED, type Limit, parseLimit, WINDOW_MS, WINDOW_NAMES } from './window.js';
