// The gcp-secret-manager store against a local gRPC Secret Manager (test/fake) through the official
// client: the store conformance suite, then failure injection, recovery of lost responses, etag
// conflicts, `latest` versus `current`, and the number of API calls a rotation costs.
import { randomUUID } from 'node:crypto';
import type { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import type { ConfigError } from '../../../src/core/errors.js';
import type { ProviderInstance } from '../../../src/core/provider.js';
import { providers } from '../../../src/registry.js';
import type { SecretStore } from '../../../src/core/ports.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { call, newVersion, rejection, stored } from '../../../test/conformance/refs.js';
import { callsPerRotation, storeConformance } from '../../../test/conformance/store.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { crc32c } from '../crc32c.js';
import gcpSecretManager, { INTENT_ANNOTATION, type GcpSecretManagerStoreBinding } from '../index.js';
import { parseSecretResourceName, referencesSecret } from '../gcp-names.js';
import { officialClient, startFakeSecretManager, type FakeSecretManager } from './fake/secret-manager-fake.js';

const PROJECT = 'rekey-test';
type Instance = ProviderInstance<GcpSecretManagerStoreBinding>;

let fake: FakeSecretManager;
let gcp: Instance;
let raw: SecretManagerServiceClient;
const opened: Instance[] = [];

function open(overrides: Record<string, unknown> = {}): Instance {
  const config = gcpSecretManager.config.parse({
    project: PROJECT,
    apiEndpoint: '127.0.0.1',
    port: fake.port,
    insecure: true,
    ...overrides,
  });
  const instance = gcpSecretManager.open(config, testProviderContext('gcp-test'));
  opened.push(instance);
  return instance;
}

function storeFor(name: string, instance = gcp): SecretStore {
  return instance.store!({ secret: 'payments-api-key', params: gcpSecretManager.bindings.store!.parse({ name }) });
}

const uniqueName = () => `rekey-test-${randomUUID()}`;
const versionsOf = (name: string) => fake.model.secrets.get(name)?.versions ?? [];

beforeAll(async () => {
  fake = await startFakeSecretManager(PROJECT);
  gcp = open();
  raw = officialClient(fake.port);
});

afterAll(async () => {
  await raw?.close();
  for (const instance of opened) await instance.close?.();
  await fake?.close();
});

storeConformance('gcp-secret-manager', () => {
  const name = uniqueName();
  return Promise.resolve({ store: storeFor(name), secret: name, module: gcpSecretManager });
});

describe('gcp-secret-manager: failures', () => {
  it('RESOURCE_EXHAUSTED and UNAVAILABLE are one call each, surfacing as retryable THROTTLED and UNAVAILABLE for the engine to retry', async () => {
    const store = storeFor(uniqueName());
    const v = newVersion('exhausted');
    fake.resetCalls();
    fake.exhaust(1, 'AddSecretVersion');
    const throttled = await rejection(store.writePending(v.ref, v.value, call()));
    expect([throttled.code, throttled.retryable]).toEqual(['REKEY_ERR_THROTTLED', true]);
    expect(fake.calls.AddSecretVersion).toBe(1); // the client's own retries (up to 10 minutes) are off too
    const { storeVersionId } = await store.writePending(v.ref, v.value, call()); // the engine's next attempt

    fake.exhaust(1, 'AccessSecretVersion');
    const error = await rejection(store.read({ storeVersionId }, call()));
    expect([error.code, error.retryable]).toEqual(['REKEY_ERR_THROTTLED', true]);
    expect(fake.calls.AccessSecretVersion).toBe(1);
    expect((await store.read({ storeVersionId }, call())).equals(v.value)).toBe(true);
  });

  it('PERMISSION_DENIED is not retryable and names the secret and the permission', async () => {
    const name = uniqueName();
    const store = storeFor(name);
    const v = newVersion('denied');
    fake.resetCalls();
    fake.deny('AddSecretVersion');
    try {
      const error = await rejection(store.writePending(v.ref, v.value, call()));
      expect(error.code).toBe('REKEY_ERR_DENIED');
      expect(error.retryable).toBe(false);
      expect(error.message).toContain('secretmanager.versions.add');
      expect(error.message).toContain(`projects/${PROJECT}/secrets/${name}`);
      expect(error.message).not.toContain(v.value.reveal());
      expect(fake.calls.AddSecretVersion).toBe(1);
    } finally {
      fake.allow('AddSecretVersion');
    }
  });

  it('a lost AddSecretVersion response, retried by core, adopts the version instead of adding one', async () => {
    const name = uniqueName();
    const store = storeFor(name);
    const v = newVersion('lost-add');
    fake.loseResponse('AddSecretVersion');
    const error = await rejection(store.writePending(v.ref, v.value, call()));
    expect(error.code).toBe('REKEY_ERR_UNAVAILABLE');
    expect(error.retryable).toBe(true);
    expect(versionsOf(name)).toHaveLength(1);

    const { storeVersionId } = await store.writePending(v.ref, v.value, call());
    expect(storeVersionId).toBe('1');
    expect(versionsOf(name)).toHaveLength(1);
    expect(await store.list(call())).toEqual([{ storeVersionId: '1', versionId: v.ref.versionId, stages: ['pending'] }]);
  });

  it('lost responses at every step of writePending still end with exactly one new version', async () => {
    const name = uniqueName();
    const store = storeFor(name);
    const a = newVersion('lost-all');
    await store.promote(stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId), undefined, null, call());
    const b = newVersion('lost-all');
    fake.loseResponse('UpdateSecret'); // the intent
    await rejection(store.writePending(b.ref, b.value, call()));
    fake.loseResponse('AddSecretVersion');
    await rejection(store.writePending(b.ref, b.value, call()));
    fake.loseResponse('UpdateSecret'); // the pending alias
    await rejection(store.writePending(b.ref, b.value, call()));
    const { storeVersionId } = await store.writePending(b.ref, b.value, call());
    expect(versionsOf(name)).toHaveLength(2);
    expect(storeVersionId).toBe('2');
    expect((await store.read({ stage: 'pending' }, call())).equals(b.value)).toBe(true);
    expect((await store.read({ stage: 'current' }, call())).equals(a.value)).toBe(true);
  });

  it.each(['grpc', 'rest'] as const)('a concurrent change between read and update (etag) is re-read and merged, keeping the other change (%s; REST: an HTTP 400 whose body says FAILED_PRECONDITION)', async (transport) => {
    const name = uniqueName();
    const store = storeFor(name, transport === 'grpc' ? gcp : open({ transport, port: fake.restPort }));
    const v = newVersion('etag');
    const sv = stored(v.ref, (await store.writePending(v.ref, v.value, call())).storeVersionId);
    fake.before('UpdateSecret', (model) => {
      const secret = model.secrets.get(name)!;
      secret.aliases = { ...secret.aliases, canary: 1 };
      secret.etag = '"changed-by-someone-else"';
    });
    fake.resetCalls();
    await store.promote(sv, undefined, null, call());
    expect(fake.calls).toEqual({ GetSecret: 2, UpdateSecret: 2 });
    expect(fake.model.secrets.get(name)!.aliases).toEqual({ current: 1, canary: 1 });
  });

  it('a secret that keeps changing under every attempt ends in a retryable CONFLICT', async () => {
    const name = uniqueName();
    const store = storeFor(name);
    const v = newVersion('etag');
    const sv = stored(v.ref, (await store.writePending(v.ref, v.value, call())).storeVersionId);
    let meddling = true;
    const meddle = (model: typeof fake.model) => {
      model.secrets.get(name)!.etag = `"changed-${Math.random()}"`;
      if (meddling) fake.before('UpdateSecret', meddle);
    };
    fake.before('UpdateSecret', meddle);
    try {
      const error = await rejection(store.promote(sv, undefined, null, call()));
      expect(error.code).toBe('REKEY_ERR_CONFLICT');
      expect(error.retryable).toBe(true);
    } finally {
      meddling = false;
    }
    await store.promote(sv, undefined, null, call()); // the hook re-armed once more; this attempt absorbs it
    expect((await store.read({ stage: 'current' }, call())).equals(v.value)).toBe(true);
  });

  it('an aborted call.signal aborts the call', async () => {
    const error = await rejection(storeFor(uniqueName()).list({ signal: AbortSignal.abort() }));
    expect(error.code).toBe('REKEY_ERR_TIMEOUT');
  });
});

describe('gcp-secret-manager: aliases and versions', () => {
  it('consumers must read `current`: `latest` already serves the unverified pending value', async () => {
    const name = uniqueName();
    const store = storeFor(name);
    const a = newVersion('latest');
    await store.promote(stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId), undefined, null, call());
    const b = newVersion('latest');
    await store.writePending(b.ref, b.value, call());
    const access = async (version: string) => {
      const [response] = await raw.accessSecretVersion({ name: `projects/${PROJECT}/secrets/${name}/versions/${version}` });
      return Buffer.from(response.payload!.data as Uint8Array).toString('utf8');
    };
    expect(await access('latest')).toBe(b.value.reveal());
    expect(await access('current')).toBe(a.value.reveal());
  });

  it('a fresh value re-issued for the same versionId replaces the pending version and disables the old one', async () => {
    const name = uniqueName();
    const store = storeFor(name);
    const first = newVersion('reissued');
    const again = { ...first, value: SecretValue.of(`reissued_${randomUUID()}`) };
    const a = await store.writePending(first.ref, first.value, call());
    const b = await store.writePending(again.ref, again.value, call());
    const c = await store.writePending(again.ref, again.value, call());
    expect(b.storeVersionId).not.toBe(a.storeVersionId);
    expect(c.storeVersionId).toBe(b.storeVersionId);
    expect((await store.read({ stage: 'pending' }, call())).equals(again.value)).toBe(true);
    expect(versionsOf(name).map((v) => v.state)).toEqual(['DISABLED', 'ENABLED']);
    expect(await store.list(call())).toEqual([{ storeVersionId: b.storeVersionId, versionId: first.ref.versionId, stages: ['pending'] }]);
  });

  it('destroy: "destroy" mode disables, then destroys the data', async () => {
    const name = uniqueName();
    const store = storeFor(name, open({ destroy: 'destroy' }));
    const a = newVersion('destroy');
    const sa = stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId);
    await store.destroy(sa, call());
    await store.destroy(sa, call());
    const version = versionsOf(name)[0]!;
    expect(version.state).toBe('DESTROYED');
    expect(version.data).toBeUndefined();
    expect(fake.model.secrets.get(name)!.annotations[INTENT_ANNOTATION]).toBeUndefined();
    expect(await store.list(call())).toEqual([]);
  });

  it('a late promotion landing between destroy dropping the aliases and disabling the version is refused: current never rests on a disabled version', async () => {
    const name = uniqueName();
    const store = storeFor(name);
    const a = newVersion('interleaved');
    const sa = stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId);
    await store.promote(sa, undefined, null, call());
    const b = newVersion('interleaved');
    const sb = stored(b.ref, (await store.writePending(b.ref, b.value, call())).storeVersionId);
    // b's rotation is rolled back: its destroy has dropped the `pending` alias and is about to disable
    // b when b's own promotion arrives from a driver stalled past its lease. It expects a, which is
    // current, so the compare-and-set alone lets it through.
    const held = fake.hold('DisableSecretVersion');
    const destroying = store.destroy(sb, call());
    await held.arrived;
    const late = await store.promote(sb, sa, sa, call()).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    held.release();
    await destroying;
    expect((await store.read({ stage: 'current' }, call())).equals(a.value)).toBe(true);
    expect(late?.code).toBe('REKEY_ERR_NOT_FOUND');
    expect(fake.model.secrets.get(name)!.aliases).toEqual({ current: 1 });
    expect(versionsOf(name).map((v) => v.state)).toEqual(['ENABLED', 'DISABLED']);
  });

  it('refuses to destroy the current version', async () => {
    const store = storeFor(uniqueName());
    const a = newVersion('current');
    const sa = stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId);
    await store.promote(sa, undefined, null, call());
    expect((await rejection(store.destroy(sa, call()))).code).toBe('REKEY_ERR_INVALID');
  });

  it('lists every version of a secret with more than a page of them, one API call per page of 100', async () => {
    const name = uniqueName();
    const store = storeFor(name);
    const v = newVersion('many');
    await store.writePending(v.ref, v.value, call());
    for (let i = 0; i < 229; i++) fake.model.AddSecretVersion({ parent: `projects/${PROJECT}/secrets/${name}`, payload: { data: Buffer.from(`older-${i}`) } });
    fake.resetCalls();
    const listed = await store.list(call());
    expect(listed.map((e) => Number(e.storeVersionId)).sort((a, b) => a - b)).toEqual(Array.from({ length: 230 }, (_, i) => i + 1));
    expect(listed.find((e) => e.storeVersionId === '1')).toEqual({ storeVersionId: '1', versionId: v.ref.versionId, stages: ['pending'] });
    expect(fake.calls.ListSecretVersions).toBe(3);
  });

  it('keeps aliases and annotations it does not own', async () => {
    const name = uniqueName();
    const store = storeFor(name);
    const a = newVersion('foreign');
    const sa = stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId);
    const [secret] = await raw.getSecret({ name: `projects/${PROJECT}/secrets/${name}` });
    await raw.updateSecret({
      secret: { name: secret.name, versionAliases: { ...secret.versionAliases, canary: 1 }, annotations: { ...secret.annotations, team: 'payments' } },
      updateMask: { paths: ['version_aliases', 'annotations'] },
    });
    await store.promote(sa, undefined, null, call());
    const after = fake.model.secrets.get(name)!;
    expect(after.aliases).toEqual({ canary: 1, current: 1 });
    expect(after.annotations.team).toBe('payments');
  });

  it('maps resource names from notifications to bindings, by project id or number', () => {
    expect(parseSecretResourceName('projects/123/secrets/api-key/versions/7')).toEqual({
      project: '123',
      location: undefined,
      secretId: 'api-key',
      version: '7',
    });
    const config = { project: PROJECT, projectNumber: '123' };
    expect(referencesSecret('projects/123/secrets/api-key', config, 'api-key')).toBe(true);
    expect(referencesSecret(`projects/${PROJECT}/secrets/api-key`, config, 'api-key')).toBe(true);
    expect(referencesSecret('projects/999/secrets/api-key', config, 'api-key')).toBe(false);
    expect(referencesSecret('projects/123/secrets/other', config, 'api-key')).toBe(false);
  });

  it('crc32c matches the Castagnoli check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('insecure mode is refused for a non-loopback endpoint', () => {
    const parsed = gcpSecretManager.config.safeParse({ project: PROJECT, apiEndpoint: 'secretmanager.googleapis.com', insecure: true });
    expect(parsed.success).toBe(false);
  });
});

describe('gcp-secret-manager: calls per rotation', () => {
  for (const mode of ['disable', 'destroy'] as const) {
    it(`counts API calls and time per steady-state rotation (destroy: ${mode})`, async () => {
      const store = storeFor(uniqueName(), mode === 'disable' ? gcp : open({ destroy: 'destroy' }));
      const total = await callsPerRotation(`gcp-secret-manager (destroy: ${mode})`, store, fake);
      expect(total).toBe(mode === 'disable' ? 10 : 11);
      expect((await store.list(call())).map((e) => e.stages)).toEqual([['current']]);
    });
  }
});

describe('gcp-secret-manager in rekey.yaml', () => {
  const problems = (secrets: string) =>
    parseConfig(`providers:\n  gcp: { type: gcp-secret-manager, project: my-project-1 }\nsecrets:\n${secrets}`, 'rekey.yaml', providers).then(
      () => '',
      (e: unknown) => (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
    );

  it('refuses two managed secrets that would share one Google secret (a client of one named like another)', async () => {
    // Both would keep their versions in secret api-web: each rotation moves the other's `current` alias.
    expect(await problems(`
  a: { store: { provider: gcp, name: api }, issuer: { type: random }, clients: [web] }
  b: { store: { provider: gcp, name: api-web }, issuer: { type: random } }
`)).toMatch(/secrets\.b\.store: .*api-web on gcp, as the store of a\/web does/);
    expect(await problems(`
  a: { store: { provider: gcp, name: api }, issuer: { type: random } }
  b: { store: { provider: gcp, name: api }, issuer: { type: random } }
`)).toMatch(/secrets\.b\.store: /);
    expect(await problems(`
  a: { store: { provider: gcp, name: api }, issuer: { type: random }, clients: [web] }
  b: { store: { provider: gcp, name: api-jobs }, issuer: { type: random } }
`)).toBe('');
  });
});
