/**
 * helm/rekey behind its ingress: the server believes exactly the ingress hops about a client's
 * address (never "true", which any client could exploit by writing X-Forwarded-For itself), and
 * the default NetworkPolicy lets only the ingress controller's namespace reach the server's port.
 */
import { describe, expect, it } from 'vitest';
import { containerOf, render, Rendered } from './chart.js';

const HOSTS = JSON.stringify([{ host: 'rekey.example.com', paths: [{ path: '/webhooks', pathType: 'Prefix' }] }]);
const withIngress = (...extra: string[]) => new Rendered(render(undefined, ['--set', 'server.ingress.enabled=true', '--set-json', `server.ingress.hosts=${HOSTS}`, ...extra]));

const trustProxy = (out: Rendered, component: 'server' | 'worker' = 'server') =>
  containerOf(out.workload(component)!, component).env!.find((v) => v.name === 'REKEY_TRUST_PROXY')?.value;

interface PolicySpec {
  ingress: Array<{ ports: Array<{ port: number }>; from?: unknown[] }>;
}
const serverPolicy = (out: Rendered) => out.get('NetworkPolicy', 'rekey-server').spec as unknown as PolicySpec;

// Each test renders the chart several times: seconds on a loaded machine.
describe('helm/rekey with its ingress enabled', { timeout: 60_000 }, () => {
  it('trusts exactly the ingress hops, and no proxy without an ingress', () => {
    expect(trustProxy(withIngress())).toBe('1');
    expect(trustProxy(withIngress('--set', 'server.ingress.trustedHops=2'))).toBe('2');
    expect(trustProxy(new Rendered(render(undefined)))).toBe('false');
    // An explicit setting wins.
    expect(trustProxy(withIngress('--set-string', 'trustProxy=10.0.0.0/8'))).toBe('10.0.0.0/8');
  });

  it("admits the server's port from the ingress controller's namespace only", () => {
    expect(serverPolicy(withIngress()).ingress[0]).toEqual({
      ports: [{ port: 8080, protocol: 'TCP' }],
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }],
    });
    expect(serverPolicy(withIngress('--set', 'server.ingress.controllerNamespace=traefik')).ingress[0]!.from).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'traefik' } } },
    ]);
    // Peers the operator lists replace the default.
    const listed = [{ podSelector: { matchLabels: { app: 'gateway' } } }];
    expect(serverPolicy(withIngress('--set-json', `networkPolicy.serverFrom=${JSON.stringify(listed)}`)).ingress[0]!.from).toEqual(listed);
  });

  it('never exposes /metrics: the server serves it on its own port, which the Ingress does not route to and Prometheus scrapes', () => {
    const out = withIngress();
    const server = containerOf(out.workload('server')!, 'server');
    const metricsPort = server.env!.find((v) => v.name === 'REKEY_METRICS_PORT')?.value;
    expect(metricsPort).toBe('9464');
    expect(server.ports).toContainEqual({ name: 'metrics', containerPort: 9464, protocol: 'TCP' });
    // The Ingress's backends are the Service's `http` port, which targets PORT, not the metrics port.
    const ingress = out.get('Ingress', 'rekey-server').spec as unknown as { rules: Array<{ http: { paths: Array<{ backend: { service: { port: { name: string } } } }> } }> };
    expect(ingress.rules.flatMap((r) => r.http.paths.map((p) => p.backend.service.port.name))).toEqual(['http']);
    const service = out.get('Service', 'rekey-server').spec as unknown as { ports: Array<{ name: string; targetPort: string }> };
    expect(service.ports.find((p) => p.name === 'http')?.targetPort).toBe('http');
    expect(server.env!.find((v) => v.name === 'PORT')?.value).toBe('8080');
    // Prometheus reaches the metrics port, from any source unless listed; the controller's namespace only reaches 8080.
    expect(serverPolicy(out).ingress[1]).toEqual({ ports: [{ port: 9464, protocol: 'TCP' }] });
    const monitor = new Rendered(render(undefined, ['--set', 'serviceMonitor.enabled=true'])).get('ServiceMonitor', 'rekey-server').spec as unknown as { endpoints: Array<{ port: string }> };
    expect(monitor.endpoints[0]!.port).toBe('metrics');
    // metricsPort 0: /metrics beside the receivers, as before.
    const shared = containerOf(withIngress('--set', 'server.metricsPort=0').workload('server')!, 'server');
    expect(shared.env!.find((v) => v.name === 'REKEY_METRICS_PORT')?.value).toBe('');
  });
});
