/**
 * The store's health as a running proxy sees it: the body of its /ready, read inside one proxy pod
 * with `kubectl exec` (no port is opened, and no network policy is in the way). Readiness itself
 * never depends on the store, so this is where an outage shows in `deploy status`.
 */
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { isRecord } from './manifests.js';

export interface StoreHealth {
  healthy: boolean;
  detail: string;
}

/** Run by the image's own node: prints /ready's body whatever its status. */
const READ_READY =
  "fetch('http://127.0.0.1:'+(process.env.MELI_PROXY_PORT||8080)+'/ready').then(r=>r.text()).then(t=>process.stdout.write(t),e=>{process.stderr.write(String(e));process.exit(1)})";

export async function proxyStoreHealth(
  run: RunKubectl,
  namespace: string,
  deployment = 'meli-proxy',
): Promise<StoreHealth> {
  const result = await run({
    args: ['exec', `deployment/${deployment}`, '--namespace', namespace, '--', 'node', '-e', READ_READY],
    timeoutMs: 20_000,
  });
  if (result.exitCode !== 0 || result.timedOut) {
    return {
      healthy: false,
      detail: `could not ask a proxy pod (${result.timedOut ? 'no answer' : firstErrorLine(result)})`,
    };
  }
  try {
    const body: unknown = JSON.parse(result.stdout);
    const store =
      isRecord(body) && isRecord(body.dependencies) && isRecord(body.dependencies.store)
        ? body.dependencies.store
        : undefined;
    if (!store) return { healthy: false, detail: '/ready did not report the store' };
    if (store.healthy === true) return { healthy: true, detail: 'reachable' };
    return {
      healthy: false,
      detail: `unreachable: ${String(store.reason ?? 'no reason given')} (the proxy keeps serving)`,
    };
  } catch {
    return { healthy: false, detail: '/ready answered something other than JSON' };
  }
}
