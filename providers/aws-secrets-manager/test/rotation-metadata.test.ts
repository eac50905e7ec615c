// describeRotation on AWS Secrets Manager, through the official SDK and the JSON 1.1 fake: rekey's
// schedule as tags (AWS's own RotationRules need a Lambda rotator, and rekey is the rotator), only
// rekey's tags touched, and AWS rotation left on by someone reported as a conflict.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import type { ProviderInstance } from '../../../src/core/provider.js';
import type { SecretStore } from '../../../src/core/ports.js';
import { call } from '../../../test/conformance/refs.js';
import { useLoopbackAwsEnv } from '../../../test/support/aws-env.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import awsSecretsManager, { ROTATION_TAGS, type AwsSecretsManagerStoreBinding } from '../index.js';
import { startFakeSecretsManager, type FakeSecretsManager } from './fake/secrets-manager-fake.js';

// wall-clock schedules: the patterns are only translated into tags by describeRotation; nothing schedules them.
let restoreEnv: () => void;

const WEEKLY = { schedule: { cron: '0 3 * * 1', timezone: 'Europe/Berlin' }, graceMs: 86_400_000 };

let fake: FakeSecretsManager;
let aws: ProviderInstance<AwsSecretsManagerStoreBinding>;

const uniqueName = () => `rekey-rot/${randomUUID()}`;
const storeFor = (name: string): SecretStore => aws.store!({ secret: 'payments-api-key', params: awsSecretsManager.bindings.store!.parse({ name }) });
const tagsOf = (name: string) => Object.fromEntries(fake.model.secrets.get(name)!.tags);

beforeAll(async () => {
  restoreEnv = useLoopbackAwsEnv();
  fake = await startFakeSecretsManager();
  aws = awsSecretsManager.open(awsSecretsManager.config.parse({ region: 'us-east-1', endpoint: fake.endpoint, maxAttempts: 1 }), testProviderContext('aws-test'));
});

afterAll(async () => {
  await aws?.close?.();
  await fake?.close();
  restoreEnv?.();
});

describe('aws-secrets-manager: describeRotation', () => {
  it('tags the secret with the schedule and grace, creating it if absent; AWS rotation stays off', async () => {
    const name = uniqueName();
    const summary = await storeFor(name).describeRotation!(WEEKLY, call());
    expect(tagsOf(name)).toEqual({
      [ROTATION_TAGS.rotatedBy]: 'rekey',
      [ROTATION_TAGS.schedule]: '0 3 * * 1 Europe/Berlin',
      [ROTATION_TAGS.grace]: '1d',
    });
    expect(fake.model.secrets.get(name)!.rotation).toBeUndefined();
    expect(summary).toBe('tagged rekey:schedule="0 3 * * 1 Europe/Berlin" (AWS rotation stays off: rekey rotates)');
  });

  it('is idempotent, and a changed schedule rewrites only the tag that changed', async () => {
    const name = uniqueName();
    const store = storeFor(name);
    await store.describeRotation!(WEEKLY, call());
    fake.resetCalls();
    await store.describeRotation!(WEEKLY, call());
    expect(fake.calls).toEqual({ DescribeSecret: 1 });

    const changed = await store.describeRotation!({ ...WEEKLY, schedule: { cron: '0 4 * * *', timezone: 'UTC' } }, call());
    expect(fake.calls).toEqual({ DescribeSecret: 2, TagResource: 1 });
    expect(tagsOf(name)[ROTATION_TAGS.schedule]).toBe('0 4 * * * UTC');
    expect(changed).toContain('0 4 * * * UTC');
  });

  it('removes only its own tags when the schedule goes', async () => {
    const name = uniqueName();
    const store = storeFor(name);
    await store.describeRotation!(WEEKLY, call());
    fake.model.TagResource({ SecretId: name, Tags: [{ Key: 'team', Value: 'payments' }] });
    expect(await store.describeRotation!({ graceMs: 0 }, call())).toBe('rekey schedule tags removed');
    expect(tagsOf(name)).toEqual({ team: 'payments' });
    fake.resetCalls();
    expect(await store.describeRotation!({ graceMs: 0 }, call())).toBe('no rotation schedule');
    expect(fake.calls).toEqual({ DescribeSecret: 1 });
  });

  it('AWS rotation turned on by someone is a conflict, reported with the fix', async () => {
    const name = uniqueName();
    fake.model.CreateSecret({ Name: name });
    fake.model.secrets.get(name)!.rotation = { lambdaArn: 'arn:aws:lambda:us-east-1:123456789012:function:rotator', scheduleExpression: 'rate(30 days)' };
    const error = await storeFor(name).describeRotation!(WEEKLY, call()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).code).toBe('REKEY_ERR_INVALID');
    expect((error as ProviderError).message).toContain('function:rotator');
    expect((error as ProviderError).message).toContain('cancel-rotate-secret');
    expect(tagsOf(name)).toEqual({});
  });

  it('TagResource denied: DENIED naming secretsmanager:TagResource', async () => {
    const name = uniqueName();
    fake.deny('TagResource');
    try {
      const error = await storeFor(name).describeRotation!(WEEKLY, call()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((error as ProviderError).code).toBe('REKEY_ERR_DENIED');
      expect((error as ProviderError).message).toContain('secretsmanager:TagResource');
    } finally {
      fake.allow('TagResource');
    }
  });
});
