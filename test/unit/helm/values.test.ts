/**
 * helm/rekey's values: values.schema.json rejects bad values (helm refuses to render),
 * every key of values.yaml is documented with a `# --` comment and known to the schema
 * (and the reverse), and the generated deploy/ manifests and README table are current.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMap, parseAllDocuments, parseDocument, type YAMLMap } from 'yaml';
import { buildProgram } from '../../../src/cli/main.js';
import { packageRoot } from '../../../src/paths.js';
import { providers } from '../../../src/registry.js';
import { loadSettings } from '../../../src/settings.js';
import { chartDir, containerOf, helm, render, Rendered } from './chart.js';

describe('helm/rekey values.schema.json', () => {
  const template = (...args: string[]) => helm(['template', 'rekey', chartDir, ...args]);

  it.each([
    ['a negative worker replica count', ['--set', 'worker.replicas=-1'], "'/worker/replicas': minimum"],
    ['a negative server replica count', ['--set', 'server.replicas=-1'], "'/server/replicas': minimum"],
    ['an unknown top-level key', ['--set', 'replicas=2'], "additional properties 'replicas' not allowed"],
    ['an unknown nested key', ['--set', 'worker.replica=2'], "additional properties 'replica' not allowed"],
    ['a misspelled probe field', ['--set', 'server.livenessProbe.periodSecond=5'], "additional properties 'periodSecond'"],
    ['a port out of range', ['--set', 'server.port=70000'], "'/server/port': maximum"],
    ['a drain timeout of zero', ['--set', 'drainTimeoutSeconds=0'], "'/drainTimeoutSeconds': minimum"],
    ['a replica count that is a string', ['--set-string', 'worker.replicas=two'], "'/worker/replicas'"],
    ['an RBAC target naming nothing', ['--set', 'rbac.create=true', '--set', 'rbac.targets[0].namespace=apps'], "'/rbac/targets/0'"],
    ['an RBAC target with an empty Secret list', ['--set-json', 'rbac.targets=[{"secrets":[]}]'], "'/rbac/targets/0/secrets'"],
    ['an empty existingSecret', ['--set', 'credentials.existingSecret='], "'/credentials/existingSecret'"],
    ['an unknown log level', ['--set', 'logLevel=verbose'], "'/logLevel'"],
    ['Redis Sentinel without sentinels', ['--set', 'redis.mode=sentinel'], "'/redis/sentinel/hosts'"],
    ['a Redis Cluster seed without a port', ['--set', 'redis.mode=cluster', '--set', 'redis.cluster.nodes[0]=redis-cluster-leader'], "'/redis/cluster/nodes/0'"],
    ['a database number on a Redis Cluster', ['--set', 'redis.mode=cluster', '--set', 'redis.cluster.nodes[0]=leader:6379', '--set', 'redis.db=2'], "'/redis/db'"],
    ['trusting every proxy (any client could write its own address)', ['--set-string', 'trustProxy=true'], "'/trustProxy'"],
    // An Ingress with neither rules nor a defaultBackend: the API server refuses it, and nothing would be routed anyway.
    ['an ingress without hosts', ['--set', 'server.ingress.enabled=true'], "'/server/ingress/hosts'"],
    // The server would listen twice on one port (EADDRINUSE), and the Service would repeat a port the API server refuses.
    ['a server metrics port equal to the server port', ['--set', 'server.metricsPort=8080', '--set', 'server.service.port=80'], 'server.metricsPort must differ from server.port'],
    ['a server metrics port equal to the Service port', ['--set', 'server.service.port=9464'], 'server.metricsPort must differ from server.service.port'],
  ])('rejects %s', (_what, args, message) => {
    const result = template(...args);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(message);
  });

  it('rejects an autoscaler whose minimum exceeds its maximum', () => {
    const result = template('--set', 'worker.autoscaling.enabled=true', '--set', 'worker.autoscaling.minReplicas=5', '--set', 'worker.autoscaling.maxReplicas=2');
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('minReplicas must not exceed maxReplicas');
  });

  it('builds REDIS_URL from the Sentinel or Cluster values: the topology, with TLS and database, no password', () => {
    const redisUrl = (...args: string[]) => {
      const result = template(...args);
      expect(result.status, result.stderr).toBe(0);
      return [...new Set([...result.stdout.matchAll(/name: REDIS_URL\n\s+(?:# .*\n\s+)?value: "([^"]+)"/g)].map((m) => m[1]))];
    };
    expect(redisUrl('--set', 'redis.mode=sentinel', '--set-json', 'redis.sentinel.hosts=["s-0.s:26379","s-1.s:26379"]', '--set', 'redis.sentinel.masterName=myMaster', '--set', 'redis.db=3', '--set', 'redis.tls=true')).toEqual([
      'rediss+sentinel://s-0.s:26379,s-1.s:26379/myMaster/3',
    ]);
    expect(redisUrl('--set', 'redis.mode=cluster', '--set-json', 'redis.cluster.nodes=["redis-cluster-leader.redis.svc:6379"]')).toEqual(['redis+cluster://redis-cluster-leader.redis.svc:6379']);
  });

  it('accepts zero replicas', () => {
    expect(template('--set', 'worker.replicas=0', '--set', 'server.replicas=0').status).toBe(0);
  });
});

// A value refused only when rekey starts installs fine, then crash-loops every pod: the schema
// must refuse what loadSettings refuses, and accept the values just inside the bound.
describe('helm/rekey values.schema.json against the settings rekey starts with', () => {
  /** The worker's environment as rendered, each Secret reference given a plausible value. */
  const workerEnv = (args: string[]): NodeJS.ProcessEnv => {
    const fromSecrets: Record<string, string> = { DATABASE_URL: 'postgresql://rekey@db/rekey', REDIS_URL: 'redis://redis:6379' };
    const env = containerOf(new Rendered(render(undefined, args)).workload('worker')!, 'worker').env!;
    return Object.fromEntries(env.flatMap((v) => (v.value !== undefined ? [[v.name, v.value]] : fromSecrets[v.name] ? [[v.name, fromSecrets[v.name]]] : [])));
  };
  const cluster = ['--set', 'redis.mode=cluster', '--set-json', 'redis.cluster.nodes=["leader.redis.svc:6379"]'];

  it.each([
    ['an audit anchor interval over 1h', ['--set', 'audit.anchorInterval=61m'], ['--set', 'audit.anchorInterval=60m'], "'/audit/anchorInterval'"],
    ['an audit anchor interval over 1h, in hours', ['--set', 'audit.anchorInterval=2h'], ['--set', 'audit.anchorInterval=1h'], "'/audit/anchorInterval'"],
    ['an audit anchor interval under 1s', ['--set', 'audit.anchorInterval=999ms'], ['--set', 'audit.anchorInterval=1000ms'], "'/audit/anchorInterval'"],
    ['an audit anchor interval of zero', ['--set', 'audit.anchorInterval=0s'], ['--set', 'audit.anchorInterval=1s'], "'/audit/anchorInterval'"],
    ['a queue prefix without a hash tag on a Redis Cluster', [...cluster, '--set-json', 'queuePrefix="rekey"'], [...cluster, '--set-json', 'queuePrefix="rekey-{a}"'], "'/queuePrefix'"],
    ['an empty hash tag on a Redis Cluster', [...cluster, '--set-json', 'queuePrefix="{}rekey"'], [...cluster, '--set-json', 'queuePrefix="{rekey}"'], "'/queuePrefix'"],
  ])('rejects %s, as rekey would at start', (_what, refused, accepted, message) => {
    expect(() => loadSettings(workerEnv(accepted))).not.toThrow();
    const result = helm(['template', 'rekey', chartDir, ...refused]);
    expect(result.status, `helm accepted ${refused.join(' ')}`).not.toBe(0);
    expect(result.stderr).toContain(message);
  });
});

interface SchemaNode {
  $ref?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  definitions?: Record<string, SchemaNode>;
}

describe('helm/rekey values.yaml', () => {
  const doc = parseDocument(readFileSync(join(chartDir, 'values.yaml'), 'utf8'));
  const schema = JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')) as SchemaNode;
  /** Follows a local `#/definitions/...` reference. */
  const resolve = (node: SchemaNode | undefined): SchemaNode | undefined =>
    node?.$ref ? resolve(schema.definitions?.[node.$ref.replace('#/definitions/', '')]) : node;

  /** A `# --` comment directly above a key (the last paragraph of the comment). */
  const hasDoc = (comment: string | null | undefined) => (comment ?? '').split(/\n\s*\n/).pop()!.trimStart().startsWith('-- ');

  /**
   * Walks values.yaml beside the schema: every key needs a `# --` comment unless it is a
   * map the schema describes key by key (then its keys do), and the schema knows it.
   */
  function check(map: YAMLMap, node: SchemaNode, path: string, problems: string[]): void {
    const keys = new Set<string>();
    map.items.forEach((pair, index) => {
      const key = String((pair.key as { value: unknown }).value);
      const where = path ? `${path}.${key}` : key;
      keys.add(key);
      const child = resolve(node.properties?.[key]);
      if (!child) problems.push(`${where}: not in values.schema.json`);
      const documented = hasDoc((pair.key as { commentBefore?: string | null }).commentBefore ?? (index === 0 ? map.commentBefore : null));
      const described = child?.properties !== undefined && isMap(pair.value);
      if (!documented && !described) problems.push(`${where}: no "# --" comment`);
      // Like helm-docs: a documented map is one row, unless its own keys are documented too.
      const childrenDocumented = described && hasDoc((pair.value as YAMLMap).commentBefore);
      if (described && (!documented || childrenDocumented)) check(pair.value as YAMLMap, child, where, problems);
    });
    // `global` is Helm's, passed to every chart whether or not it uses it.
    for (const key of Object.keys(node.properties ?? {})) {
      if (!keys.has(key) && !(path === '' && key === 'global')) problems.push(`${path ? `${path}.` : ''}${key}: in the schema, not in values.yaml`);
    }
  }

  it('documents every key with a "# --" comment, in step with values.schema.json', () => {
    const problems: string[] = [];
    check(doc.contents as YAMLMap, schema, '', problems);
    expect(problems).toEqual([]);
  });

  it('closes every object the chart defines with additionalProperties: false', () => {
    const open: string[] = [];
    const walk = (node: SchemaNode, path: string) => {
      if (!node.properties) return;
      // config is rekey.yaml: `rekey apply` validates it; the K8s security contexts take any field.
      const passthrough = ['config', 'podSecurityContext', 'securityContext'].some((p) => path === p || path.startsWith(`${p}.`));
      if (node.additionalProperties !== false && !passthrough) open.push(path || '(root)');
      for (const [key, child] of Object.entries(node.properties)) walk(resolve(child)!, path ? `${path}.${key}` : key);
    };
    walk(schema, '');
    expect(open).toEqual([]);
  });
});

describe('generated files', () => {
  it('deploy/rekey.yaml and the chart README values table are current (npm run manifests)', () => {
    const result = spawnSync(process.execPath, ['scripts/render-manifests.mjs', '--check'], { cwd: packageRoot, encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('deploy/rekey.yaml leaves the rekey-config ConfigMap to the operator', () => {
    const manifests = parseAllDocuments(readFileSync(join(packageRoot, 'deploy', 'rekey.yaml'), 'utf8'))
      .map((doc) => doc.toJSON() as { kind: string; metadata: { name: string } } | null)
      .filter((m) => m !== null);
    const names = manifests.map((m) => `${m.kind}/${m.metadata.name}`);
    expect(names).toEqual(expect.arrayContaining(['Deployment/rekey-worker', 'Deployment/rekey-server', 'Job/rekey-migrate']));
    expect(names.filter((n) => n.startsWith('ConfigMap/'))).toEqual([]);
  });
});

// The subcommands and flags the manifests run must exist in the real CLI: its program,
// built in process (spawning the CLI through tsx cost seconds per command).
describe('the rekey CLI', () => {
  it.each([
    ['worker', ['--port', '--concurrency']],
    ['server', ['--port']],
    ['migrate', []],
    ['apply', ['-f']],
  ])('has `rekey %s` with %j', (command, flags) => {
    const program = buildProgram({ modules: providers, out: () => undefined });
    const help = program.commands.find((c) => c.name() === command)?.helpInformation();
    expect(help).toBeDefined();
    for (const flag of flags) expect(help).toMatch(new RegExp(`(^|[\\s,])${flag}[\\s,=<]`, 'm'));
  });
});
