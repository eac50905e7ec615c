/**
 * helm/rekey rendered by the real helm binary, for the default values and every
 * helm/rekey/ci/*.yaml: lint, security context, probes, the exact `rekey` subcommands,
 * every environment variable of src/settings.ts wired, shutdown timing, and that the
 * objects point at each other (selectors, ports, ServiceAccounts).
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseDuration } from '../../../src/core/duration.js';
import { parseRedisUrl } from '../../../src/core/redis-endpoint.js';
import { ENVIRONMENT, type EnvName, type EnvVar } from '../../../src/settings.js';
import {
  allContainers,
  chartDir,
  containerOf,
  helm,
  podTemplate,
  render,
  Rendered,
  selects,
  variants,
  type Manifest,
} from './chart.js';

interface Values {
  config: unknown;
  drainTimeoutSeconds: number;
  credentials: {
    existingSecret: string;
    keys: Record<'databaseUrl' | 'migrateDatabaseUrl' | 'redisUrl' | 'fingerprintKey' | 'auditKey' | 'anchorWebhook' | 'localStoreKey' | 'redisPassword' | 'redisSentinelPassword', string>;
  };
  database: { existingSecret: string; key: string };
  redis: {
    mode: 'secret' | 'sentinel' | 'cluster';
    sentinel: { hosts: string[]; masterName: string };
    cluster: { nodes: string[] };
    tls: boolean;
    db: number;
    passwordSecret: { name: string; key: string };
    sentinelPasswordSecret: { name: string; key: string };
  };
  extraEnv: Array<{ name: string }>;
  serviceAccount: { create: boolean; name: string; automount: boolean };
  rbac: { create: boolean; tokenReview: boolean; targets: Array<{ namespace?: string; secrets?: string[]; deployments?: string[] }> };
  worker: { port: number; concurrency: number; replicas: number; autoscaling: { enabled: boolean } };
  server: { port: number; metricsPort: number; replicas: number; preStopDelaySeconds: number; ingress: { enabled: boolean } };
  migrate: { enabled: boolean; allowRemoveAll: boolean };
  networkPolicy: { enabled: boolean };
  serviceMonitor: { enabled: boolean };
}

/** The chart's defaults overlaid with a variant file, merged the way helm merges maps. */
function valuesOf(file: string | undefined): Values {
  const merge = (base: unknown, over: unknown): unknown => {
    if (!isObject(base) || !isObject(over)) return over === undefined ? base : over;
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = merge(base[k], v);
    return out;
  };
  const defaults = parse(readFileSync(`${chartDir}/values.yaml`, 'utf8')) as unknown;
  return merge(defaults, file ? (parse(readFileSync(file, 'utf8')) as unknown) : {}) as Values;
}
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Which secret key each secret variable of ENVIRONMENT comes from. */
const SECRET_KEYS: Partial<Record<EnvName, keyof Values['credentials']['keys']>> = {
  DATABASE_URL: 'databaseUrl',
  REKEY_MIGRATE_DATABASE_URL: 'migrateDatabaseUrl',
  REKEY_AUDIT_KEY: 'auditKey',
  REKEY_AUDIT_ANCHOR_WEBHOOK: 'anchorWebhook',
  REDIS_URL: 'redisUrl',
  REKEY_FINGERPRINT_KEY: 'fingerprintKey',
  REKEY_LOCAL_STORE_KEY: 'localStoreKey',
  REDIS_PASSWORD: 'redisPassword',
  REDIS_SENTINEL_PASSWORD: 'redisSentinelPassword',
};

/**
 * The Secret and key a credential variable must come from, and whether it may be missing; or
 * undefined when the values build it as a literal (REDIS_URL from redis.sentinel/cluster: no password in it).
 */
function secretSource(values: Values, name: EnvName): { name: string; key: string; optional: boolean } | undefined {
  const { existingSecret, keys } = values.credentials;
  const own = (ref: { name: string; key: string }) => (ref.name ? { name: ref.name, key: ref.key, optional: false } : undefined);
  const overridden =
    name === 'DATABASE_URL' ? own({ name: values.database.existingSecret, key: values.database.key })
    : name === 'REDIS_PASSWORD' ? own(values.redis.passwordSecret)
    : name === 'REDIS_SENTINEL_PASSWORD' ? own(values.redis.sentinelPasswordSecret)
    : undefined;
  if (name === 'REDIS_URL' && values.redis.mode !== 'secret') return undefined;
  return overridden ?? { name: existingSecret, key: keys[SECRET_KEYS[name]!], optional: ENVIRONMENT[name].requiredBy.length === 0 };
}

describe.each(variants)('helm/rekey with $name values', ({ file }) => {
  let out: Rendered;
  const values = valuesOf(file);
  beforeAll(() => {
    out = new Rendered(render(file));
  });

  it('passes helm lint --strict', () => {
    const result = helm(['lint', '--strict', chartDir, ...(file ? ['-f', file] : [])]);
    expect(result.stderr + result.stdout).toContain('0 chart(s) failed');
    expect(result.status).toBe(0);
  });

  it('renders NOTES.txt with what to do next', () => {
    // `helm template` skips NOTES.txt; a client-side dry-run install renders it without a cluster.
    const result = helm(['install', 'rekey', chartDir, '--dry-run=client', '--namespace', 'rekey', ...(file ? ['-f', file] : [])]);
    expect(result.status, result.stderr).toBe(0);
    const notes = result.stdout.slice(result.stdout.indexOf('NOTES:'));
    expect(notes).toContain(`rollout status deployment/${out.workload('worker')!.metadata.name}`);
    expect(notes).toContain(values.credentials.existingSecret);
  });

  it('runs exactly the rekey subcommands of the process contract', () => {
    const worker = containerOf(out.workload('worker')!, 'worker');
    const concurrency = values.worker.concurrency > 0 ? ['--concurrency', String(values.worker.concurrency)] : [];
    expect(worker.args).toEqual(['worker', '--port', String(values.worker.port), ...concurrency]);
    expect(containerOf(out.workload('server')!, 'server').args).toEqual(['server', '--port', String(values.server.port)]);
    for (const workload of [out.workload('worker')!, out.workload('server')!]) {
      // The image's entrypoint is `rekey`; overriding command would bypass it.
      for (const c of allContainers(workload)) expect(c.command).toBeUndefined();
    }
    const job = out.workload('migrate');
    if (!values.migrate.enabled) {
      expect(job).toBeUndefined();
      return;
    }
    expect(job!.kind).toBe('Job');
    const pod = podTemplate(job!).spec;
    expect(pod.initContainers?.map((c) => c.args)).toEqual([['migrate']]);
    expect(pod.containers.map((c) => c.args)).toEqual([['apply', '-f', '/etc/rekey/rekey.yaml', '--defer-rotation-metadata']]);
    for (const c of allContainers(job!)) expect(c.command).toBeUndefined();
  });

  it('hands rekey apply the configured rekey.yaml before install, upgrade and rollback', () => {
    if (!values.migrate.enabled) return;
    const job = out.workload('migrate')!;
    const hooks = (m: Manifest) => m.metadata.annotations?.['helm.sh/hook']?.split(',') ?? [];
    const weight = (m: Manifest) => Number(m.metadata.annotations?.['helm.sh/hook-weight']);
    expect(hooks(job)).toEqual(expect.arrayContaining(['pre-install', 'pre-upgrade', 'pre-rollback']));
    const mount = containerOf(job, 'apply').volumeMounts?.find((m) => m.mountPath === '/etc/rekey');
    const volume = podTemplate(job).spec.volumes?.find((v) => v.name === mount?.name);
    const configMap = out.get('ConfigMap', volume!.configMap!.name);
    const config = typeof values.config === 'string' ? (parse(values.config) as unknown) : values.config;
    expect(parse(configMap.data!['rekey.yaml']!)).toEqual(config);
    // The ConfigMap and the hook's ServiceAccount exist before the Job starts.
    const account = podTemplate(job).spec.serviceAccountName!;
    const prerequisites = [configMap, ...(values.serviceAccount.create ? [out.get('ServiceAccount', account)] : [])];
    for (const m of prerequisites) {
      expect(hooks(m)).toEqual(hooks(job));
      expect(weight(m)).toBeLessThan(weight(job));
    }
  });

  it('passes --allow-remove-all to rekey apply only when migrate.allowRemoveAll says so', () => {
    if (!values.migrate.enabled) return;
    expect(containerOf(out.workload('migrate')!, 'apply').args).toEqual(['apply', '-f', '/etc/rekey/rekey.yaml', '--defer-rotation-metadata', ...(values.migrate.allowRemoveAll ? ['--allow-remove-all'] : [])]);
    const allowing = new Rendered(render(file, ['--set', 'migrate.allowRemoveAll=true']));
    expect(containerOf(allowing.workload('migrate')!, 'apply').args).toEqual(['apply', '-f', '/etc/rekey/rekey.yaml', '--defer-rotation-metadata', '--allow-remove-all']);
  });

  it('locks every container down: non-root, read-only root, no escalation, no capabilities, seccomp', () => {
    const workloads = [out.workload('worker')!, out.workload('server')!, ...(values.migrate.enabled ? [out.workload('migrate')!] : [])];
    for (const workload of workloads) {
      const pod = podTemplate(workload).spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } });
      for (const c of allContainers(workload)) {
        expect(c.securityContext, c.name).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          runAsNonRoot: true,
          runAsUser: 10001,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        });
        expect(c.securityContext?.capabilities?.add).toBeUndefined();
        expect(c.securityContext?.privileged).not.toBe(true);
        // With a read-only root filesystem, /tmp must be a writable emptyDir.
        const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
        expect(pod.volumes?.find((v) => v.name === tmp?.name)?.emptyDir, `${c.name} /tmp`).toBeDefined();
      }
    }
  });

  it('probes /healthz for liveness and /readyz for readiness on the port rekey listens on', () => {
    for (const component of ['worker', 'server'] as const) {
      const c = containerOf(out.workload(component)!, component);
      const port = c.args![c.args!.indexOf('--port') + 1];
      const named = c.ports!.find((p) => p.name === c.livenessProbe?.httpGet?.port);
      expect(String(named?.containerPort)).toBe(port);
      expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: named!.name });
      expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: named!.name });
    }
  });

  it('wires every environment variable of src/settings.ts, credentials from the existing Secret (or their own)', () => {
    const workloads = [out.workload('worker')!, out.workload('server')!, ...(values.migrate.enabled ? [out.workload('migrate')!] : [])];
    for (const c of workloads.flatMap(allContainers)) {
      const env = c.env ?? [];
      for (const [name, spec] of Object.entries(ENVIRONMENT) as Array<[EnvName, EnvVar]>) {
        const entries = env.filter((e) => e.name === name);
        // The owner role's URL reaches the container running `rekey migrate` and no other.
        if (spec.only && !spec.only.includes(c.name as 'migrate')) {
          expect(entries, `${c.name}: ${name}`).toHaveLength(0);
          continue;
        }
        expect(entries, `${c.name}: ${name}`).toHaveLength(1);
        const entry = entries[0]!;
        const source = spec.secret ? secretSource(values, name) : undefined;
        if (source) {
          // A credential never sits in a manifest as a literal.
          expect(entry.value, `${c.name}: ${name}`).toBeUndefined();
          expect(entry.valueFrom?.secretKeyRef, `${c.name}: ${name}`).toMatchObject({ name: source.name, key: source.key });
          // Only variables no process requires may be missing from the Secret.
          expect(entry.valueFrom?.secretKeyRef?.optional === true, `${c.name}: ${name} optional`).toBe(source.optional);
        } else if (spec.secret) {
          // Built from values: the topology only, never a password.
          expect(entry.value, `${c.name}: ${name}`).toMatch(/^rediss?\+(sentinel|cluster):\/\/[^@]+$/);
          expect(() => parseRedisUrl(entry.value!)).not.toThrow();
        } else {
          expect(typeof entry.value, `${c.name}: ${name}`).toBe('string');
        }
      }
      for (const extra of values.extraEnv) expect(env.map((e) => e.name)).toContain(extra.name);
    }
    for (const component of ['worker', 'server'] as const) {
      const c = containerOf(out.workload(component)!, component);
      // PORT agrees with --port, whichever rekey reads.
      expect(c.env!.find((e) => e.name === 'PORT')?.value).toBe(c.args![c.args!.indexOf('--port') + 1]);
    }
  });

  it('gives pods longer to stop than the worker drains', () => {
    for (const component of ['worker', 'server'] as const) {
      const workload = out.workload(component)!;
      const pod = podTemplate(workload).spec;
      const drain = parseDuration(containerOf(workload, component).env!.find((e) => e.name === 'REKEY_DRAIN_TIMEOUT')!.value!);
      expect(drain).toBeGreaterThan(0);
      expect(pod.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(drain!);
    }
  });

  it('keeps a stopping server pod serving while Kubernetes takes it out of the endpoints, and the grace period covers that wait and the drain', () => {
    // Endpoint removal and SIGTERM race: a server that closes its listener at once refuses
    // requests still routed to it (a leak webhook among them) until every proxy has caught up.
    const workload = out.workload('server')!;
    const command = containerOf(workload, 'server').lifecycle?.preStop?.exec?.command;
    expect(command).toEqual(['sleep', String(values.server.preStopDelaySeconds)]);
    expect(values.server.preStopDelaySeconds).toBeGreaterThan(0);
    const drain = parseDuration(containerOf(workload, 'server').env!.find((e) => e.name === 'REKEY_DRAIN_TIMEOUT')!.value!)!;
    expect(podTemplate(workload).spec.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(values.server.preStopDelaySeconds * 1000 + drain);
    expect(containerOf(out.workload('worker')!, 'worker').lifecycle).toBeUndefined();
  });

  it('rolls worker and server pods when config changes', () => {
    for (const component of ['worker', 'server'] as const) {
      expect(podTemplate(out.workload(component)!).metadata.annotations?.['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it('connects its objects: selectors, ports, ServiceAccounts, names', () => {
    for (const m of out.manifests) {
      expect(m.metadata.name.length, m.metadata.name).toBeLessThanOrEqual(63);
      const rbac = m.kind === 'Role' || m.kind === 'RoleBinding';
      const clusterWide = m.kind === 'ClusterRole' || m.kind === 'ClusterRoleBinding';
      if (clusterWide) expect(m.metadata.namespace, `${m.kind}/${m.metadata.name}`).toBeUndefined();
      else if (!rbac) expect(m.metadata.namespace, `${m.kind}/${m.metadata.name}`).toBe('rekey');
    }
    for (const d of out.all('Deployment')) {
      const spec = d.spec as { selector: { matchLabels: Record<string, string> } };
      expect(selects(spec.selector.matchLabels, podTemplate(d).metadata.labels)).toBe(true);
    }
    const pods = out.all('Deployment').map((d) => podTemplate(d));
    for (const svc of out.all('Service')) {
      const spec = svc.spec as { selector: Record<string, string>; ports: Array<{ name: string; targetPort: string }> };
      const targets = pods.filter((p) => selects(spec.selector, p.metadata.labels));
      expect(targets, svc.metadata.name).toHaveLength(1);
      for (const port of spec.ports) expect(targets[0]!.spec.containers[0]!.ports!.map((p) => p.name)).toContain(port.targetPort);
    }
    for (const pdb of out.all('PodDisruptionBudget')) {
      const spec = pdb.spec as { selector: { matchLabels: Record<string, string> } };
      expect(pods.filter((p) => selects(spec.selector.matchLabels, p.metadata.labels)), pdb.metadata.name).toHaveLength(1);
    }
    const accounts = new Set(pods.map((p) => p.spec.serviceAccountName));
    expect(accounts.size).toBe(1);
    const account = [...accounts][0]!;
    expect(account).toBe(values.serviceAccount.create ? (out.find('ServiceAccount', account) && account) : values.serviceAccount.name);
    expect(podTemplate(out.workload('worker')!).spec.automountServiceAccountToken).toBe(values.serviceAccount.automount);
    expect(podTemplate(out.workload('server')!).spec.automountServiceAccountToken).toBe(values.rbac.tokenReview);
  });

  it('grants the server create on tokenreviews, and nothing else cluster-wide, only with rbac.tokenReview', () => {
    const roles = out.all('ClusterRole');
    if (!values.rbac.create || !values.rbac.tokenReview) {
      expect(roles).toHaveLength(0);
      expect(out.all('ClusterRoleBinding')).toHaveLength(0);
      return;
    }
    expect(roles.map((r) => r.rules)).toEqual([[{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }]]);
    const binding = out.get('ClusterRoleBinding', roles[0]!.metadata.name);
    expect(binding.roleRef).toMatchObject({ kind: 'ClusterRole', name: roles[0]!.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: podTemplate(out.workload('server')!).spec.serviceAccountName, namespace: 'rekey' }]);
  });

  it('limits the kubernetes-secret Role to named Secrets and Deployments, get and patch', () => {
    const roles = out.all('Role');
    if (!values.rbac.create) {
      expect(roles).toHaveLength(0);
      return;
    }
    expect(roles).toHaveLength(values.rbac.targets.length);
    values.rbac.targets.forEach((target, i) => {
      const role = roles.find((r) => r.metadata.name.endsWith(`-${i}`))!;
      expect(role.metadata.namespace).toBe(target.namespace ?? 'rekey');
      for (const rule of role.rules!) {
        expect(rule.resourceNames?.length, 'a rule without resourceNames grants every object').toBeGreaterThan(0);
        expect(rule.verbs).toEqual(['get', 'patch']);
      }
      const granted = (resource: string) => role.rules!.filter((r) => r.resources.includes(resource)).flatMap((r) => r.resourceNames!);
      expect(granted('secrets')).toEqual(target.secrets ?? []);
      expect(granted('deployments')).toEqual(target.deployments ?? []);
      expect(role.rules!.flatMap((r) => r.resources).every((r) => r === 'secrets' || r === 'deployments')).toBe(true);
      const binding = out.get('RoleBinding', role.metadata.name);
      expect(binding.metadata.namespace).toBe(role.metadata.namespace);
      expect(binding.roleRef).toMatchObject({ kind: 'Role', name: role.metadata.name });
      expect(binding.subjects).toEqual([
        { kind: 'ServiceAccount', name: podTemplate(out.workload('worker')!).spec.serviceAccountName, namespace: 'rekey' },
      ]);
    });
  });

  it("admits traffic only to the server's ports (receivers, metrics) and the worker metrics port", () => {
    const policies = out.all('NetworkPolicy');
    if (!values.networkPolicy.enabled) {
      expect(policies).toHaveLength(0);
      return;
    }
    const serverPorts = [values.server.port, ...(values.server.metricsPort ? [values.server.metricsPort] : [])];
    const expected = { server: serverPorts, worker: [values.worker.port], migrate: [] as number[] };
    for (const component of ['server', 'worker', 'migrate'] as const) {
      const workload = out.workload(component);
      if (!workload) continue;
      const policy = policies.find((p) => {
        const spec = p.spec as { podSelector: { matchLabels: Record<string, string> } };
        return selects(spec.podSelector.matchLabels, podTemplate(workload).metadata.labels);
      });
      const spec = policy?.spec as { policyTypes: string[]; ingress: Array<{ ports?: Array<{ port: number }> }> };
      expect(spec.policyTypes).toContain('Ingress');
      const ports = spec.ingress.map((rule) => rule.ports?.map((p) => p.port));
      // Every rule names a port (a rule without ports would open all of them).
      expect(ports, component).toEqual(expected[component].map((port) => [port]));
    }
  });

  it('renders the optional objects when enabled and only then', () => {
    const worker = out.workload('worker')!;
    const hpa = out.all('HorizontalPodAutoscaler');
    expect(hpa).toHaveLength(values.worker.autoscaling.enabled ? 1 : 0);
    if (values.worker.autoscaling.enabled) {
      expect(hpa[0]!.spec).toMatchObject({ scaleTargetRef: { kind: 'Deployment', name: worker.metadata.name } });
      // The HPA owns the replica count; a fixed one would fight it on every upgrade.
      expect((worker.spec as { replicas?: number }).replicas).toBeUndefined();
    } else {
      expect((worker.spec as { replicas?: number }).replicas).toBe(values.worker.replicas);
    }
    const ingress = out.all('Ingress');
    expect(ingress).toHaveLength(values.server.ingress.enabled ? 1 : 0);
    for (const i of ingress) {
      const rules = (i.spec as { rules: Array<{ http: { paths: Array<{ backend: { service: { name: string; port: { name: string } } } }> } }> }).rules;
      for (const path of rules.flatMap((r) => r.http.paths)) {
        expect(out.get('Service', path.backend.service.name).metadata.labels?.['app.kubernetes.io/component']).toBe('server');
        expect(path.backend.service.port.name).toBe('http');
      }
    }
    const monitors = out.all('ServiceMonitor');
    expect(monitors).toHaveLength(values.serviceMonitor.enabled ? 2 : 0);
    for (const monitor of monitors) {
      const spec = monitor.spec as { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string }> };
      const services = out.all('Service').filter((s) => selects(spec.selector.matchLabels, s.metadata.labels));
      expect(services, monitor.metadata.name).toHaveLength(1);
      const portNames = (services[0]!.spec as { ports: Array<{ name: string }> }).ports.map((p) => p.name);
      for (const endpoint of spec.endpoints) {
        expect(portNames).toContain(endpoint.port);
        expect(endpoint.path).toBe('/metrics');
      }
    }
  });
});

describe('helm/rekey config reload', () => {
  it('changes the pods\' config checksum when config changes, and only then', () => {
    const checksum = (extra: string[]) =>
      podTemplate(new Rendered(render(undefined, extra)).workload('worker')!).metadata.annotations!['checksum/config'];
    const base = checksum([]);
    expect(checksum(['--set', 'logLevel=debug'])).toBe(base);
    expect(checksum(['--set-json', 'config={"providers":{"vault":{"type":"local"}},"secrets":{}}'])).not.toBe(base);
  });
});

describe('helm/rekey server.preStopDelaySeconds', () => {
  it('0 leaves the server without a preStop hook and its grace period at the drain plus the margin', () => {
    const workload = new Rendered(render(undefined, ['--set', 'server.preStopDelaySeconds=0'])).workload('server')!;
    expect(containerOf(workload, 'server').lifecycle).toBeUndefined();
    expect(podTemplate(workload).spec.terminationGracePeriodSeconds).toBe(valuesOf(undefined).drainTimeoutSeconds + 10);
  });
});
