// The kubernetes-secret target through @kubernetes/client-node, configured by a kubeconfig file,
// against a local fake API server (fake/kube-apiserver.ts).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import type { ConfigError } from '../../../src/core/errors.js';
import type { Target } from '../../../src/core/ports.js';
import { providers } from '../../../src/registry.js';
import { call, held, newVersion, rejection } from '../../../test/conformance/refs.js';
import { targetConformance } from '../../../test/conformance/target.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { kubernetesSecret } from '../index.js';
import { RESTARTED_AT, restartedFor } from '../kubernetes-secret.target.js';
import { startFakeKubeApi, type FakeKubeApi } from './fake/kube-apiserver.js';

let api: FakeKubeApi;
let dir: string;
let kubeconfig: string;
const NS = 'payments';
const RESTARTED_FOR = restartedFor('payments-api-key', 'api-key');

beforeAll(async () => {
  api = await startFakeKubeApi();
  dir = await mkdtemp(join(tmpdir(), 'rekey-kube-'));
  kubeconfig = join(dir, 'kubeconfig');
  await writeKubeconfig(kubeconfig, api.token);
});
afterAll(async () => {
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function writeKubeconfig(path: string, token: string): Promise<void> {
  await writeFile(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      // Plain HTTP on loopback: client-node allows http:// only with TLS verification off.
      clusters: [{ name: 'fake', cluster: { server: api.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'rekey', user: { token } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'rekey', namespace: NS } }],
      'current-context': 'fake',
    }),
    { mode: 0o600 },
  );
}

function openTarget(secret: string, params: Record<string, unknown> = {}, config: Record<string, unknown> = {}): Target {
  const instance = kubernetesSecret.open(kubernetesSecret.config.parse({ kubeconfig, ...config }), testProviderContext('k8s'));
  return instance.target!({ secret, params: kubernetesSecret.bindings.target!.parse(params) });
}

let n = 0;
targetConformance('kubernetes-secret', () => {
  const name = `conformance-${(n += 1)}`;
  api.addSecret(NS, name);
  return Promise.resolve({ target: openTarget(name, { key: 'api-key' }), secret: name, cleanup: () => Promise.resolve(void api.secrets.delete(`${NS}/${name}`)) });
}, { probes: false });

describe('kubernetes-secret specifics', () => {
  beforeEach(() => {
    api.secrets.clear();
    api.deployments.clear();
    api.forbidden.clear();
    api.rolloutMs = 0;
    api.addSecret(NS, 'payments-api-key', { 'other-key': 'untouched' });
    api.addDeployment(NS, 'payments-api', 3);
  });

  it('a rotation: deploy keeps the old value one step behind, restarts the Deployment once, retire drops the old one; calls counted', async () => {
    const target = openTarget('payments-api-key', { key: 'api-key', restart: ['payments-api'] });
    const [v1, v2] = [newVersion('payments-api-key'), newVersion('payments-api-key')];
    await target.deploy(v1.ref, v1.value, call());
    api.requests.clear();
    await target.deploy(v2.ref, v2.value, call());
    expect(Object.fromEntries(api.requests)).toEqual({ 'GET secrets': 1, 'PATCH secrets': 1, 'GET deployments': 1, 'PATCH deployments': 1 });
    expect(api.secretData(NS, 'payments-api-key')).toEqual({ 'other-key': 'untouched', 'api-key': v2.value.reveal(), 'api-key.previous': v1.value.reveal() });
    expect([...api.patchTypes]).toEqual(['application/merge-patch+json']);
    const template = (api.deployments.get(`${NS}/payments-api`)!.spec as { template: { metadata: { annotations: Record<string, string> } } }).template;
    expect(template.metadata.annotations[RESTARTED_FOR]).toBe(v2.ref.fingerprint);
    expect(Date.parse(template.metadata.annotations[RESTARTED_AT]!)).toBeGreaterThan(Date.now() - 5000);

    // A retry of the same deploy changes nothing and restarts nothing.
    const generation = (api.deployments.get(`${NS}/payments-api`)!.metadata as { generation: number }).generation;
    await target.deploy(v2.ref, v2.value, call());
    expect((api.deployments.get(`${NS}/payments-api`)!.metadata as { generation: number }).generation).toBe(generation);

    api.requests.clear();
    await target.verify(v2.ref, v2.value, call());
    expect(Object.fromEntries(api.requests)).toEqual({ 'GET secrets': 1, 'GET deployments': 1 });
    expect(await held(target)).toEqual([{ fingerprint: v2.ref.fingerprint }, { fingerprint: v1.ref.fingerprint }]);

    api.requests.clear();
    await target.retire(v1.ref, call());
    expect(Object.fromEntries(api.requests)).toEqual({ 'GET secrets': 1, 'PATCH secrets': 1 });
    expect(api.secretData(NS, 'payments-api-key')).toEqual({ 'other-key': 'untouched', 'api-key': v2.value.reveal() });
    expect(await held(target)).toEqual([{ fingerprint: v2.ref.fingerprint }]);
  });

  it('a rollback (retire of the value in the key) gives the previous value back and restarts again', async () => {
    const target = openTarget('payments-api-key', { key: 'api-key', restart: ['payments-api'] });
    const [v1, v2] = [newVersion('payments-api-key'), newVersion('payments-api-key')];
    await target.deploy(v1.ref, v1.value, call());
    await target.deploy(v2.ref, v2.value, call());
    await target.retire(v2.ref, call());
    expect(api.secretData(NS, 'payments-api-key')).toEqual({ 'other-key': 'untouched', 'api-key': v1.value.reveal() });
    const template = (api.deployments.get(`${NS}/payments-api`)!.spec as { template: { metadata: { annotations: Record<string, string> } } }).template;
    expect(template.metadata.annotations[RESTARTED_FOR]).toBe(v1.ref.fingerprint);
    await target.verify(v1.ref, v1.value, call());
    // Retiring the only value removes the key, and restarts nothing (pods would lose it).
    await target.retire(v1.ref, call());
    expect(api.secretData(NS, 'payments-api-key')).toEqual({ 'other-key': 'untouched' });
    expect(template.metadata.annotations[RESTARTED_FOR]).toBe(v1.ref.fingerprint);
  });

  it('a rollback retried after failing between the Secret patch and the restart still restarts the pods onto the restored value', async () => {
    const target = openTarget('payments-api-key', { key: 'api-key', restart: ['payments-api'] });
    const [v1, v2] = [newVersion('payments-api-key'), newVersion('payments-api-key')];
    await target.deploy(v1.ref, v1.value, call());
    await target.deploy(v2.ref, v2.value, call());
    // The first attempt gives v1 back to the Secret, then fails before restarting (here the
    // Deployment read is refused; a timeout or a killed worker stop it at the same point).
    api.forbidden.add('get deployments/payments-api');
    await rejection(target.retire(v2.ref, call()));
    expect(api.secretData(NS, 'payments-api-key')!['api-key']).toBe(v1.value.reveal());
    api.forbidden.clear();
    // The engine retries the step: the pods, started for v2, must not keep running on it.
    await target.retire(v2.ref, call());
    const template = (api.deployments.get(`${NS}/payments-api`)!.spec as { template: { metadata: { annotations: Record<string, string> } } }).template;
    expect(template.metadata.annotations[RESTARTED_FOR]).toBe(v1.ref.fingerprint);
    // And a further retry restarts nothing.
    const generation = (api.deployments.get(`${NS}/payments-api`)!.metadata as { generation: number }).generation;
    await target.retire(v2.ref, call());
    expect((api.deployments.get(`${NS}/payments-api`)!.metadata as { generation: number }).generation).toBe(generation);
  });

  it('single slot (previousKey: false): retire removes a version only while it is the one in the Secret', async () => {
    const target = openTarget('payments-api-key', { key: 'api-key', previousKey: false });
    const [v1, v2] = [newVersion('payments-api-key'), newVersion('payments-api-key')];
    await target.deploy(v1.ref, v1.value, call());
    await target.deploy(v2.ref, v2.value, call());
    expect(api.secretData(NS, 'payments-api-key')).toEqual({ 'other-key': 'untouched', 'api-key': v2.value.reveal() });
    await target.retire(v1.ref, call());
    expect(api.secretData(NS, 'payments-api-key')!['api-key']).toBe(v2.value.reveal());
    await target.retire(v2.ref, call());
    expect(api.secretData(NS, 'payments-api-key')).toEqual({ 'other-key': 'untouched' });
  });

  it('verify waits until the restarted Deployment has rolled out', async () => {
    api.rolloutMs = Infinity; // until finishRollouts(): a loaded machine cannot outrun it
    const target = openTarget('payments-api-key', { key: 'api-key', restart: ['payments-api'] });
    const v = newVersion('payments-api-key');
    await target.deploy(v.ref, v.value, call());
    const early = await rejection(target.verify(v.ref, v.value, call()));
    expect([early.code, early.retryable]).toEqual(['REKEY_ERR_VERIFY_FAILED', true]);
    api.finishRollouts();
    await target.verify(v.ref, v.value, call());
  });

  it('verify waits while a pod of the old ReplicaSet still runs, even with as many pods available as wanted', async () => {
    api.rolloutMs = Infinity;
    const target = openTarget('payments-api-key', { key: 'api-key', restart: ['payments-api'] });
    const v = newVersion('payments-api-key');
    await target.deploy(v.ref, v.value, call());
    // 3 new pods (2 ready) and 1 old pod, still serving with the value it started with: 3 available.
    api.surgeRollouts();
    const early = await rejection(target.verify(v.ref, v.value, call()));
    expect([early.code, early.retryable]).toEqual(['REKEY_ERR_VERIFY_FAILED', true]);
    api.finishRollouts();
    await target.verify(v.ref, v.value, call());
  });

  it('two secrets restarting one Deployment, rotated at once: each verifies after the last restart, and a retry restarts nothing', async () => {
    api.addSecret(NS, 'payments-db');
    const apiKey = openTarget('payments-api-key', { key: 'api-key', restart: ['payments-api'] });
    const password = openTarget('payments-db', { key: 'password', restart: ['payments-api'] });
    const [k, p] = [newVersion('payments-api-key'), newVersion('payments-db')];
    // One cron for both: both deploy, then both verify (the second restart's pods read both Secrets).
    await apiKey.deploy(k.ref, k.value, call());
    await password.deploy(p.ref, p.value, call());
    await apiKey.verify(k.ref, k.value, call());
    await password.verify(p.ref, p.value, call());
    const generation = () => (api.deployments.get(`${NS}/payments-api`)!.metadata as { generation: number }).generation;
    const before = generation();
    await apiKey.deploy(k.ref, k.value, call());
    await password.deploy(p.ref, p.value, call());
    expect(generation()).toBe(before);
  });

  it('a concurrent change between read and write is a retryable CONFLICT, never an overwrite', async () => {
    const target = openTarget('payments-api-key', { key: 'api-key' });
    const v = newVersion('payments-api-key');
    api.raceNextRead = true;
    const error = await rejection(target.deploy(v.ref, v.value, call()));
    expect([error.code, error.retryable]).toEqual(['REKEY_ERR_CONFLICT', true]);
    expect(api.secretData(NS, 'payments-api-key')!['api-key']).toBeUndefined();
    await target.deploy(v.ref, v.value, call());
    expect(api.secretData(NS, 'payments-api-key')!['api-key']).toBe(v.value.reveal());
  });

  it('names the missing RBAC permission, and does not retry it', async () => {
    api.forbidden.add('patch deployments/payments-api');
    const target = openTarget('payments-api-key', { key: 'api-key', restart: ['payments-api'] });
    const v = newVersion('payments-api-key');
    const error = await rejection(target.deploy(v.ref, v.value, call()));
    expect([error.code, error.retryable]).toEqual(['REKEY_ERR_DENIED', false]);
    expect(error.message).toContain('"patch" on deployments with resourceNames [payments-api]');
  });

  it('a missing Secret is NOT_FOUND unless create: true; a bad token is DENIED', async () => {
    const v = newVersion('absent');
    const missing = await rejection(openTarget('absent', { key: 'api-key' }).deploy(v.ref, v.value, call()));
    expect([missing.code, missing.retryable]).toEqual(['REKEY_ERR_NOT_FOUND', false]);
    await openTarget('absent', { key: 'api-key', create: true }).deploy(v.ref, v.value, call());
    expect(api.secretData(NS, 'absent')).toEqual({ 'api-key': v.value.reveal() });
    const bad = join(dir, 'bad-kubeconfig');
    await writeKubeconfig(bad, 'wrong-token');
    const denied = await rejection(held(openTarget('absent', {}, { kubeconfig: bad })));
    expect(denied.code).toBe('REKEY_ERR_DENIED');
  });

  it('uses the binding\'s name and namespace over the defaults', async () => {
    api.addSecret('edge', 'shared-keys');
    const target = openTarget('payments-api-key', { name: 'shared-keys', namespace: 'edge', key: 'payments' });
    const v = newVersion('payments-api-key');
    await target.deploy(v.ref, v.value, call());
    expect(api.secretData('edge', 'shared-keys')).toEqual({ payments: v.value.reveal() });
  });
});

describe('kubernetes-secret in rekey.yaml', () => {
  const problems = (secrets: string) =>
    parseConfig(`providers:\n  cluster: { type: kubernetes-secret, namespace: payments }\n  vault: { type: local }\nsecrets:\n${secrets}`, 'rekey.yaml', providers).then(
      () => '',
      (e: unknown) => (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
    );

  it('refuses a default Secret name that is no Secret name (the target could not open: every rotation would fail)', async () => {
    expect(() => openTarget('payments_key')).toThrow(/not a valid Secret name/);
    expect(await problems(`
  payments_key: { store: { provider: vault }, issuer: { type: random }, targets: [cluster] }
`)).toMatch(/secrets\.payments_key\.targets\[0\]: .*Secret name/);
    // A client's managed name is <family>/<client>, never a Secret name.
    expect(await problems(`
  api: { store: { provider: vault }, issuer: { type: random }, clients: [web], targets: [cluster] }
`)).toMatch(/secrets\.api\.targets\[0\]: /);
    expect(await problems(`
  payments_key: { store: { provider: vault }, issuer: { type: random }, targets: [{ provider: cluster, name: payments-key }] }
  api-key: { store: { provider: vault }, issuer: { type: random }, targets: [cluster] }
`)).toBe('');
  });

  it('refuses two managed secrets writing one key of one Secret (each deploy would replace the other\'s value)', async () => {
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { type: random }, targets: [{ provider: cluster, name: app, key: token }] }
  b: { store: { provider: vault }, issuer: { type: random }, targets: [{ provider: cluster, name: app, key: token }] }
`)).toMatch(/secrets\.b\.targets\[0\]: .*token.* on cluster, as the target of a does/);
    // b's key is a's previous slot: a's next deploy moves its old value over b's.
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { type: random }, targets: [{ provider: cluster, name: app, key: token }] }
  b: { store: { provider: vault }, issuer: { type: random }, targets: [{ provider: cluster, name: app, key: token.previous }] }
`)).toMatch(/secrets\.b\.targets\[0\]: /);
    // Every client of a family would write the same key.
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { type: random }, clients: [web, jobs], targets: [{ provider: cluster, name: app, key: token }] }
`)).toMatch(/secrets\.a\.targets\[0\]: /);
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { type: random }, targets: [{ provider: cluster, name: app, key: token }] }
  b: { store: { provider: vault }, issuer: { type: random }, targets: [{ provider: cluster, name: app, key: password }] }
  c: { store: { provider: vault }, issuer: { type: random }, targets: [{ provider: cluster, namespace: edge, name: app, key: token }] }
`)).toBe('');
  });
});
