/**
 * What `deploy` prints once everything is up: where each Ingress answers and how to log in to
 * Grafana and Prometheus. Passwords are never printed, only the command that reads them.
 */
import { isRecord, type Manifest } from './manifests.js';
import { type Plan, stageManifests } from './plan.js';
import { PROMETHEUS_USER, SECRET_NAME } from './secrets.js';

function urlsOf(ingress: Manifest): string[] {
  const spec = isRecord(ingress.spec) ? ingress.spec : {};
  const tlsHosts = new Set(
    (Array.isArray(spec.tls) ? spec.tls : []).flatMap((tls) =>
      isRecord(tls) && Array.isArray(tls.hosts) ? tls.hosts.map(String) : [],
    ),
  );
  return (Array.isArray(spec.rules) ? spec.rules : [])
    .filter(isRecord)
    .filter((rule) => typeof rule.host === 'string')
    .map((rule) => `${tlsHosts.has(String(rule.host)) ? 'https' : 'http'}://${String(rule.host)}/`);
}

function readSecretCommand(namespace: string, key: string): string {
  return `kubectl --namespace ${namespace} get secret ${SECRET_NAME} -o jsonpath='{.data.${key}}' | base64 -d`;
}

export function deploySummary(plan: Plan): string[] {
  const ingresses = plan.stages.flatMap(stageManifests).filter((manifest) => manifest.kind === 'Ingress');
  const lines: string[] = [];
  for (const ingress of ingresses) {
    const urls = urlsOf(ingress).join(', ');
    if (!urls) continue;
    switch (ingress.metadata.name) {
      case 'grafana':
        lines.push(
          `Grafana:    ${urls}  (user admin; password: ${readSecretCommand(plan.namespace, 'grafana-admin-password')})`,
        );
        break;
      case 'prometheus':
        lines.push(
          `Prometheus: ${urls}  (user ${PROMETHEUS_USER}; password: ${readSecretCommand(plan.namespace, 'prometheus-password')})`,
        );
        break;
      default:
        lines.push(`Proxy:      ${urls}`);
    }
  }
  return lines;
}
