/**
 * helm/rekey's `rekey agent` sidecar (agent.workloads, named templates in _agent.tpl): the
 * operator's containers beside the agent, which authenticates with a projected service account
 * token of the configured audience, serves on loopback behind the per-host token it writes to a
 * memory emptyDir the app mounts read-only, and keeps the listed secrets and audiences fresh.
 */
import { describe, expect, it } from 'vitest';
import { containerOf, helm, chartDir, podTemplate, render, Rendered, selects } from './chart.js';

const WORKLOADS = {
  orders: {
    serviceAccountName: 'orders',
    containers: [{ name: 'app', image: 'example/orders:1.0' }],
    secrets: ['payments-api-key'],
    audiences: ['api.example.com'],
  },
};
const withAgent = (...extra: string[]) => new Rendered(render(undefined, ['--set-json', `agent.workloads=${JSON.stringify(WORKLOADS)}`, ...extra]));

interface Volume {
  name: string;
  projected?: { sources: Array<{ serviceAccountToken?: { audience: string; expirationSeconds: number; path: string } }> };
  emptyDir?: { medium?: string };
}

// Each test renders the chart: seconds on a loaded machine.
describe('helm/rekey agent sidecars', { timeout: 60_000 }, () => {
  it('runs the app beside rekey agent, authenticated with a projected token of the rekey audience', () => {
    const deployment = withAgent().get('Deployment', 'orders');
    const pod = podTemplate(deployment).spec;
    expect(pod.serviceAccountName).toBe('orders');
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.containers.map((c) => c.name)).toEqual(['app', 'rekey-agent']);
    const agent = containerOf(deployment, 'rekey-agent');
    expect(agent.args).toEqual([
      'agent',
      '--server',
      'http://rekey-server.rekey.svc:8080',
      '--token-file',
      '/var/run/secrets/rekey/token',
      '--request-token-file',
      '/run/rekey/agent-token',
      '--port',
      '2773',
      '--secret',
      'payments-api-key',
      '--audience',
      'api.example.com',
    ]);
    expect(agent.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, runAsNonRoot: true });
    const volumes = (pod as { volumes: Volume[] }).volumes;
    expect(volumes.find((v) => v.name === 'rekey-token')!.projected!.sources[0]!.serviceAccountToken).toEqual({ audience: 'rekey', expirationSeconds: 600, path: 'token' });
    expect(volumes.find((v) => v.name === 'rekey-agent')!.emptyDir).toMatchObject({ medium: 'Memory' });
    // The app reads the per-host token; only the agent writes it.
    expect(containerOf(deployment, 'app').volumeMounts).toEqual([{ name: 'rekey-agent', mountPath: '/run/rekey', readOnly: true }]);
    expect(agent.volumeMounts).toEqual([
      { name: 'rekey-token', mountPath: '/var/run/secrets/rekey', readOnly: true },
      { name: 'rekey-agent', mountPath: '/run/rekey' },
    ]);
  });

  it('takes the audience, the server and shared secrets from agent:, and renders nothing without workloads', () => {
    const out = withAgent('--set', 'agent.tokenAudience=rekey.example.com', '--set', 'agent.server=https://rekey.example.com', '--set-json', 'agent.secrets=["shared-key"]');
    const deployment = out.get('Deployment', 'orders');
    const volumes = (podTemplate(deployment).spec as { volumes: Volume[] }).volumes;
    expect(volumes.find((v) => v.name === 'rekey-token')!.projected!.sources[0]!.serviceAccountToken!.audience).toBe('rekey.example.com');
    const args = containerOf(deployment, 'rekey-agent').args!;
    expect(args[2]).toBe('https://rekey.example.com');
    expect(args.filter((_, i) => args[i - 1] === '--secret')).toEqual(['shared-key', 'payments-api-key']);
    expect(new Rendered(render(undefined)).all('Deployment').map((d) => d.metadata.name)).not.toContain('orders');
  });

  it("reaches this release's server through the Service's port, not the container's", () => {
    const out = withAgent('--set', 'server.service.port=80');
    const service = out.get('Service', 'rekey-server').spec as unknown as { ports: Array<{ name: string; port: number }> };
    expect(service.ports.find((p) => p.name === 'http')?.port).toBe(80);
    expect(containerOf(out.get('Deployment', 'orders'), 'rekey-agent').args![2]).toBe('http://rekey-server.rekey.svc:80');
  });

  it("lets the agents through the server's NetworkPolicy when it admits only some peers (ingress enabled, or serverFrom listed)", () => {
    type Peer = { podSelector?: { matchLabels: Record<string, string> }; namespaceSelector?: unknown };
    const admitted = (out: Rendered): boolean => {
      const labels = podTemplate(out.get('Deployment', 'orders')).metadata.labels;
      const policy = out.get('NetworkPolicy', 'rekey-server').spec as unknown as { ingress: Array<{ ports: Array<{ port: number }>; from?: Peer[] }> };
      const rule = policy.ingress.find((r) => r.ports.some((p) => p.port === 8080))!;
      // No `from`: any source. A podSelector without a namespaceSelector: pods of the policy's own namespace, the agents'.
      return !rule.from || rule.from.some((peer) => !peer.namespaceSelector && peer.podSelector !== undefined && selects(peer.podSelector.matchLabels, labels));
    };
    const hosts = JSON.stringify([{ host: 'rekey.example.com', paths: [{ path: '/webhooks', pathType: 'Prefix' }] }]);
    expect(admitted(withAgent('--set', 'server.ingress.enabled=true', '--set-json', `server.ingress.hosts=${hosts}`)), 'ingress enabled').toBe(true);
    expect(admitted(withAgent('--set-json', `networkPolicy.serverFrom=${JSON.stringify([{ podSelector: { matchLabels: { app: 'gateway' } } }])}`)), 'serverFrom listed').toBe(true);
    expect(admitted(withAgent()), 'any source').toBe(true);
  });

  it('runs the replicas a workload asks for, none included', () => {
    const replicas = (n: number | undefined) => {
      const workloads = { orders: { ...WORKLOADS.orders, ...(n === undefined ? {} : { replicas: n }) } };
      const out = new Rendered(render(undefined, ['--set-json', `agent.workloads=${JSON.stringify(workloads)}`]));
      return (out.get('Deployment', 'orders').spec as { replicas: number }).replicas;
    };
    expect(replicas(undefined)).toBe(1);
    expect(replicas(3)).toBe(3);
    expect(replicas(0)).toBe(0);
  });

  it('refuses a workload without a service account or containers (values.schema.json)', () => {
    const bad = helm(['template', 'rekey', chartDir, '--set-json', `agent.workloads=${JSON.stringify({ orders: { containers: [{ name: 'app', image: 'x' }] } })}`]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/serviceAccountName/);
  });
});
