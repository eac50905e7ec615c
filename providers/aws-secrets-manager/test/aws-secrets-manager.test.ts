// The aws-secrets-manager store against a local Secrets Manager (test/fake) through the official
// SDK client: the store conformance suite, then failure injection, the `field` mode, stray
// AWSPENDING labels, and the number of API calls a rotation costs.
import { randomUUID } from 'node:crypto';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderInstance } from '../../../src/core/provider.js';
import type { SecretStore } from '../../../src/core/ports.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { parseConfig } from '../../../src/config/load.js';
import type { ConfigError } from '../../../src/core/errors.js';
import { providers } from '../../../src/registry.js';
import { call, newVersion, rejection, stored } from '../../../test/conformance/refs.js';
import { callsPerRotation, storeConformance } from '../../../test/conformance/store.js';
import { useLoopbackAwsEnv } from '../../../test/support/aws-env.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import awsSecretsManager, { type AwsSecretsManagerStoreBinding } from '../index.js';
import { startFakeSecretsManager, type FakeSecretsManager } from './fake/secrets-manager-fake.js';

let restoreEnv: () => void;

type Instance = ProviderInstance<AwsSecretsManagerStoreBinding>;

let fake: FakeSecretsManager;
let aws: Instance;
let raw: SecretsManagerClient;
const opened: Instance[] = [];

function open(maxAttempts = 2): Instance {
  const config = awsSecretsManager.config.parse({ region: 'us-east-1', endpoint: fake.endpoint, maxAttempts });
  const instance = awsSecretsManager.open(config, testProviderContext('aws-test'));
  opened.push(instance);
  return instance;
}

function storeFor(params: { name: string; field?: string }, instance = aws): SecretStore {
  return instance.store!({ secret: 'payments-api-key', params: awsSecretsManager.bindings.store!.parse(params) });
}

const uniqueName = () => `rekey-test/${randomUUID()}`;

beforeAll(async () => {
  restoreEnv = useLoopbackAwsEnv();
  fake = await startFakeSecretsManager();
  aws = open();
  raw = new SecretsManagerClient({ region: 'us-east-1', endpoint: fake.endpoint, maxAttempts: 1 });
});

afterAll(async () => {
  raw?.destroy();
  for (const instance of opened) await instance.close?.();
  await fake?.close();
  restoreEnv?.();
});

storeConformance('aws-secrets-manager', () => {
  const name = uniqueName();
  return Promise.resolve({ store: storeFor({ name }), secret: name, module: awsSecretsManager });
});

describe('aws-secrets-manager: failures', () => {
  it('throttling: the SDK retries within maxAttempts, then a retryable THROTTLED surfaces', async () => {
    const name = uniqueName();
    await raw.send(new CreateSecretCommand({ Name: name }));
    const store = storeFor({ name });
    const v = newVersion('throttled');
    fake.resetCalls();
    fake.throttle(1, 'PutSecretValue');
    const { storeVersionId } = await store.writePending(v.ref, v.value, call());
    expect(fake.calls.PutSecretValue).toBe(2);

    fake.throttle(2, 'GetSecretValue');
    const error = await rejection(store.read({ storeVersionId }, call()));
    expect(error.code).toBe('REKEY_ERR_THROTTLED');
    expect(error.retryable).toBe(true);
    expect(fake.calls.GetSecretValue).toBe(2); // maxAttempts, not minutes of hidden retries
    expect((await store.read({ storeVersionId }, call())).equals(v.value)).toBe(true);
  });

  it('access denied is not retryable and names the secret and the IAM action', async () => {
    const name = uniqueName();
    const store = storeFor({ name });
    const v = newVersion('denied');
    fake.resetCalls();
    fake.deny('PutSecretValue');
    try {
      const error = await rejection(store.writePending(v.ref, v.value, call()));
      expect(error.code).toBe('REKEY_ERR_DENIED');
      expect(error.retryable).toBe(false);
      expect(error.provider).toBe('aws-test');
      expect(error.message).toContain('secretsmanager:PutSecretValue');
      expect(error.message).toContain(name);
      expect(error.message).not.toContain(v.value.reveal());
      expect(error.cause).toBeDefined();
      expect(fake.calls.PutSecretValue).toBe(1);
    } finally {
      fake.allow('PutSecretValue');
    }
  });

  it('a response lost after PutSecretValue is retried by the SDK with the same token: one version', async () => {
    const name = uniqueName();
    await raw.send(new CreateSecretCommand({ Name: name }));
    const store = storeFor({ name });
    const v = newVersion('lost');
    fake.resetCalls();
    fake.loseResponse('PutSecretValue');
    const { storeVersionId } = await store.writePending(v.ref, v.value, call());
    expect(fake.calls.PutSecretValue).toBe(2);
    expect(fake.model.secrets.get(name)!.versions.size).toBe(1);
    expect(storeVersionId).toBe(v.ref.versionId);
  });

  it('a lost response surfaced to core as UNAVAILABLE, then retried by core, leaves one version', async () => {
    const name = uniqueName();
    const store = storeFor({ name }, open(1));
    const v = newVersion('lost-core');
    fake.loseResponse('PutSecretValue');
    // The secret is absent: CreateSecret runs first, and its retry must survive "already exists" too.
    fake.loseResponse('CreateSecret');
    const first = await rejection(store.writePending(v.ref, v.value, call()));
    expect(first.code).toBe('REKEY_ERR_UNAVAILABLE');
    expect(first.retryable).toBe(true);
    await rejection(store.writePending(v.ref, v.value, call())).then((e) => expect(e.code).toBe('REKEY_ERR_UNAVAILABLE'));
    const { storeVersionId } = await store.writePending(v.ref, v.value, call());
    expect(storeVersionId).toBe(v.ref.versionId);
    expect(fake.model.secrets.get(name)!.versions.size).toBe(1);
    expect(await store.list(call())).toEqual([{ storeVersionId, versionId: v.ref.versionId, stages: ['pending'] }]);
  });

  it('5xx answers surface as retryable UNAVAILABLE after maxAttempts', async () => {
    const store = storeFor({ name: uniqueName() });
    fake.fail(2, 'ListSecretVersionIds');
    const error = await rejection(store.list(call()));
    expect(error.code).toBe('REKEY_ERR_UNAVAILABLE');
    expect(error.retryable).toBe(true);
  });

  it('an aborted call.signal aborts the SDK call', async () => {
    const store = storeFor({ name: uniqueName() });
    const error = await rejection(store.list({ signal: AbortSignal.abort() }));
    expect(error.code).toBe('REKEY_ERR_TIMEOUT');
  });

  it('a fresh value re-issued for the same versionId is written under a derived id, idempotently', async () => {
    const name = uniqueName();
    const store = storeFor({ name });
    const base = newVersion('reissued');
    const current = stored(base.ref, (await store.writePending(base.ref, base.value, call())).storeVersionId);
    await store.promote(current, undefined, null, call());
    const first = newVersion('reissued');
    const again = { ...first, value: SecretValue.of(`reissued_${randomUUID()}`) };
    const a = await store.writePending(first.ref, first.value, call());
    const b = await store.writePending(again.ref, again.value, call());
    const c = await store.writePending(again.ref, again.value, call());
    expect(a.storeVersionId).toBe(first.ref.versionId);
    expect(b.storeVersionId).not.toBe(a.storeVersionId);
    expect(c.storeVersionId).toBe(b.storeVersionId);
    expect((await store.read({ stage: 'pending' }, call())).equals(again.value)).toBe(true);
    // The superseded version lost AWSPENDING to the new one: deprecated, so destroyed for rekey.
    expect(await store.list(call())).toEqual([
      { storeVersionId: current.storeVersionId, versionId: base.ref.versionId, stages: ['current'] },
      { storeVersionId: b.storeVersionId, versionId: first.ref.versionId, stages: ['pending'] },
    ]);
  });
});

describe('aws-secrets-manager: field mode, stray labels, first version', () => {
  it('rotates one field of a JSON secret and keeps the others', async () => {
    const name = uniqueName();
    await raw.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify({ username: 'app', apiKey: 'old', port: 5432 }) }));
    const store = storeFor({ name, field: 'apiKey' });
    const current = await store.read({ stage: 'current' }, call());
    expect(current.reveal()).toBe('old');

    const v = newVersion('field');
    const next = stored(v.ref, (await store.writePending(v.ref, v.value, call())).storeVersionId);
    const pending = await raw.send(new GetSecretValueCommand({ SecretId: name, VersionStage: 'AWSPENDING' }));
    expect(JSON.parse(pending.SecretString!)).toEqual({ username: 'app', apiKey: v.value.reveal(), port: 5432 });
    // The version from before rekey is current: what a first rotation expects, as list() shows it.
    const before = (await store.list(call())).find((e) => e.stages.includes('current'))!;
    await store.promote(next, undefined, before, call());
    expect((await store.read({ stage: 'current' }, call())).equals(v.value)).toBe(true);
    expect((await store.read({ stage: 'previous' }, call())).reveal()).toBe('old');
  });

  it('field mode on a secret that is not JSON fails without quoting it', async () => {
    const name = uniqueName();
    await raw.send(new CreateSecretCommand({ Name: name, SecretString: 'not-json-s3cr3t' }));
    const store = storeFor({ name, field: 'apiKey' });
    const v = newVersion('field-bad');
    const error = await rejection(store.writePending(v.ref, v.value, call()));
    expect(error.code).toBe('REKEY_ERR_INVALID');
    expect(error.message).not.toContain('s3cr3t');
    expect(error.cause).toBeUndefined();
  });

  it('a stray AWSPENDING left by a crashed run loses its label to the next write', async () => {
    const name = uniqueName();
    const store = storeFor({ name });
    const a = newVersion('stray');
    const sa = stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId);
    await store.promote(sa, undefined, null, call());
    const stray = randomUUID();
    await raw.send(new PutSecretValueCommand({ SecretId: name, ClientRequestToken: stray, SecretString: 'stray', VersionStages: ['AWSPENDING'] }));
    expect((await store.list(call())).find((e) => e.storeVersionId === stray)?.stages).toEqual(['pending']);

    const b = newVersion('stray');
    const sb = stored(b.ref, (await store.writePending(b.ref, b.value, call())).storeVersionId);
    expect([...fake.model.secrets.get(name)!.versions.get(stray)!.stages]).toEqual([]);
    expect((await store.read({ stage: 'pending' }, call())).equals(b.value)).toBe(true);
    await store.promote(sb, sa, sa, call());
    const stages = Object.fromEntries((await store.list(call())).map((e) => [e.storeVersionId, e.stages]));
    expect(stages).toEqual({ [sa.storeVersionId]: ['previous'], [sb.storeVersionId]: ['current'] });
  });

  it('the first version of a new secret, which AWS makes AWSCURRENT at once, stays pending for rekey', async () => {
    const name = uniqueName();
    const store = storeFor({ name });
    const a = newVersion('first');
    const sa = stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId);
    expect([...fake.model.secrets.get(name)!.versions.get(sa.storeVersionId)!.stages].sort()).toEqual(['AWSCURRENT', 'AWSPENDING']);
    expect((await rejection(store.read({ stage: 'current' }, call()))).code).toBe('REKEY_ERR_NOT_FOUND');

    // Rolled back: AWS keeps AWSCURRENT on its only version; the next rotation moves it away.
    await store.destroy(sa, call());
    const b = newVersion('first');
    const sb = stored(b.ref, (await store.writePending(b.ref, b.value, call())).storeVersionId);
    expect((await store.list(call())).find((e) => e.stages.includes('current'))?.storeVersionId).toBe(sa.storeVersionId);
    await store.promote(sb, undefined, sa, call());
    expect((await store.read({ stage: 'current' }, call())).equals(b.value)).toBe(true);
  });

  it('a late promotion landing between destroy reading the labels and removing them makes destroy refuse, not report the version gone', async () => {
    const name = uniqueName();
    const store = storeFor({ name });
    const a = newVersion('interleaved');
    const sa = stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId);
    await store.promote(sa, undefined, null, call());
    const b = newVersion('interleaved');
    const sb = stored(b.ref, (await store.writePending(b.ref, b.value, call())).storeVersionId);
    // b's rotation is rolled back. Between its destroy's DescribeSecret and the removal of AWSPENDING,
    // b's own promotion arrives from a driver stalled past its lease and moves AWSCURRENT from a (which
    // it expected) to b.
    const model = fake.model;
    const update = model.UpdateSecretVersionStage.bind(model);
    model.UpdateSecretVersionStage = (input) => {
      model.UpdateSecretVersionStage = update;
      update({ SecretId: name, VersionStage: 'AWSCURRENT', MoveToVersionId: sb.storeVersionId, RemoveFromVersionId: sa.storeVersionId });
      return update(input);
    };
    // AWS keeps AWSCURRENT on b (it cannot be removed, only moved), so b is served: destroy must say so
    // (core then gives current back and destroys b again), not report b gone.
    expect((await rejection(store.destroy(sb, call()))).code).toBe('REKEY_ERR_INVALID');
    expect((await store.read({ stage: 'current' }, call())).equals(b.value)).toBe(true);
  });

  it('refuses to destroy the current version', async () => {
    const store = storeFor({ name: uniqueName() });
    const a = newVersion('current');
    const sa = stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId);
    await store.promote(sa, undefined, null, call());
    expect((await rejection(store.destroy(sa, call()))).code).toBe('REKEY_ERR_INVALID');
  });
});

describe('aws-secrets-manager: calls per rotation', () => {
  for (const field of [undefined, 'apiKey']) {
    it(`counts API calls and time per steady-state rotation${field ? ' (field mode)' : ''}`, async () => {
      const store = storeFor({ name: uniqueName(), ...(field ? { field } : {}) });
      const total = await callsPerRotation(`aws-secrets-manager${field ? ' field mode' : ''}`, store, fake);
      expect(total).toBe(field ? 9 : 8);
      expect((await store.list(call())).map((e) => e.stages)).toEqual([['current']]);
    });
  }
});

describe('aws-secrets-manager in rekey.yaml', () => {
  const problems = (secrets: string) =>
    parseConfig(`providers:\n  aws: { type: aws-secrets-manager, region: eu-west-1 }\nsecrets:\n${secrets}`, 'rekey.yaml', providers).then(
      () => '',
      (e: unknown) => (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
    );

  it('refuses two managed secrets that would share one AWS secret (a client of one named like another)', async () => {
    // Both would stage their versions in prod/api/web: each rotation moves the other's AWSCURRENT.
    expect(await problems(`
  a: { store: { provider: aws, name: prod/api }, issuer: { type: random }, clients: [web] }
  b: { store: { provider: aws, name: prod/api/web }, issuer: { type: random } }
`)).toMatch(/secrets\.b\.store: .*prod\/api\/web on aws, as the store of a\/web does/);
    expect(await problems(`
  a: { store: { provider: aws, name: prod/api }, issuer: { type: random } }
  b: { store: { provider: aws, name: prod/api }, issuer: { type: random } }
`)).toMatch(/secrets\.b\.store: /);
    expect(await problems(`
  a: { store: { provider: aws, name: prod/api }, issuer: { type: random }, clients: [web] }
  b: { store: { provider: aws, name: prod/api/jobs }, issuer: { type: random } }
`)).toBe('');
  });
});

describe('aws-secrets-manager: a full ARN with clients:', () => {
  const arnOf = (name: string) => `arn:aws:secretsmanager:us-east-1:${fake.model.account}:secret:${name}-AbCdEf`;

  it('a client of an ARN names no secret AWS can create: refused when rekey.yaml is applied', async () => {
    // At run time the client's entry would be <arn>/web: AWS finds no such secret and cannot create one by that name.
    const store = instanceStore(arnOf('prod/api'), 'web');
    const v = newVersion('arn-client');
    const failed = await rejection(store.writePending(v.ref, v.value, call()));
    expect([failed.code, failed.message]).toEqual(['REKEY_ERR_INVALID', expect.stringContaining('CreateSecret') as string]);
    const yaml = `providers:\n  aws: { type: aws-secrets-manager, region: us-east-1 }\nsecrets:\n  a: { store: { provider: aws, name: "${arnOf('prod/api')}" }, issuer: { type: random }, clients: [web] }\n`;
    const error = await parseConfig(yaml, 'rekey.yaml', providers).then(
      () => undefined,
      (e: unknown) => e as ConfigError,
    );
    expect(error).toBeDefined();
    expect(error?.issues.map((i) => `${i.path}: ${i.message}`).join('\n')).toMatch(/secrets\.a\.store: .*ARN.*clients/);
  });
});

describe('aws-secrets-manager: a name AWS does not allow', () => {
  it('is refused when rekey.yaml is applied, not by every rotation', async () => {
    // AWS secret names are 1-512 of A-Z a-z 0-9 / _ + = . @ -: no such secret exists, and CreateSecret refuses the name.
    const v = newVersion('bad-name');
    const failed = await rejection(storeFor({ name: 'prod/payments api-key' }).writePending(v.ref, v.value, call()));
    expect([failed.code, failed.message]).toEqual(['REKEY_ERR_INVALID', expect.stringContaining('CreateSecret') as string]);
    const problems = (name: string) =>
      parseConfig(`providers:\n  aws: { type: aws-secrets-manager, region: us-east-1 }\nsecrets:\n  a: { store: { provider: aws, name: "${name}" }, issuer: { type: random } }\n`, 'rekey.yaml', providers).then(
        () => '',
        (e: unknown) => (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
      );
    expect(await problems('prod/payments api-key')).toMatch(/secrets\.a\.store: .*name/);
    expect(await problems('prod#payments')).toMatch(/secrets\.a\.store: /);
    expect(await problems('p'.repeat(513))).toMatch(/secrets\.a\.store: /);
    expect(await problems('prod/payments_api+key=1.0@x-y')).toBe('');
    expect(await problems('arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/api-AbCdEf')).toBe('');
  });
});

function instanceStore(name: string, client: string): SecretStore {
  return aws.store!({ secret: `a/${client}`, client, params: awsSecretsManager.bindings.store!.parse({ name }) });
}
