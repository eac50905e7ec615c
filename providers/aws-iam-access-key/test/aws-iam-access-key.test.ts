// The official @aws-sdk/client-iam against a local fake speaking IAM's Query protocol.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import type { ConfigError } from '../../../src/core/errors.js';
import { providers } from '../../../src/registry.js';
import { issuerConformance } from '../../../test/conformance/issuer.js';
import { call, issued, newVersion } from '../../../test/conformance/refs.js';
import { useLoopbackAwsEnv } from '../../../test/support/aws-env.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { ISSUE_JOURNAL_TAG } from '../aws-iam-access-key.issuer.js';
import awsIam from '../index.js';
import { startFakeIam, type FakeIam, type FakeKey } from './fake/iam-server.js';

let fake: FakeIam;
let restoreEnv: () => void;

beforeAll(async () => {
  fake = await startFakeIam();
  restoreEnv = useLoopbackAwsEnv({ AWS_ACCESS_KEY_ID: fake.callerKeyId });
});
afterAll(async () => {
  await fake.close();
  restoreEnv?.();
});

function open(params: Record<string, unknown> = {}, seed: Array<Partial<FakeKey>> = []) {
  const userName = `svc-${randomUUID().slice(0, 8)}`;
  fake.users.set(
    userName,
    seed.map((k, i) => ({
      userName,
      accessKeyId: `AKIASEED${String(i).padStart(12, '0')}`,
      secretAccessKey: 'seeded',
      status: 'Active',
      createDate: new Date(Date.UTC(2024, 0, 1 + i)),
      ...k,
    })),
  );
  const instance = awsIam.open(awsIam.config.parse({ endpoint: fake.endpoint }), testProviderContext('aws-iam'));
  const issuer = instance.issuer!({ secret: 'ci-deploy-key', params: awsIam.bindings.issuer!.parse({ userName, ...params }) });
  return { userName, issuer, keys: () => fake.users.get(userName)!, close: () => instance.close!() };
}

issuerConformance(
  'aws-iam-access-key',
  () => {
    const { issuer, userName, close } = open();
    return Promise.resolve({ issuer, secret: 'ci-deploy-key', unknownState: { userName, accessKeyId: 'AKIA0000000000000000' }, cleanup: close });
  },
  { revokeIsObservable: true },
);

describe('aws-iam-access-key', () => {
  it('stores the key pair as JSON and only the key id in the state', async () => {
    const { userName, issuer, keys, close } = open();
    const { value, state } = await issuer.issue(newVersion('k').ref, call());
    const parsed = JSON.parse(value.reveal()) as { accessKeyId: string; secretAccessKey: string };
    expect(parsed.accessKeyId).toMatch(/^AKIA[A-Z0-9]{16}$/);
    expect(parsed.secretAccessKey).toBe(keys()[0]!.secretAccessKey);
    expect(state).toEqual({ userName, accessKeyId: parsed.accessKeyId });
    expect(issuer.publicId!(state)).toBe(parsed.accessKeyId);
    expect(issuer.publicId!({ role: 'x' })).toBeUndefined();
    await close();
  });

  it('a key created by an attempt whose answer was lost is deleted by the next attempt at that version', async () => {
    const live = { accessKeyId: 'AKIALIVE000000000000', status: 'Active' as const };
    const { userName, issuer, keys, close } = open({}, [live]);
    const version = newVersion('k').ref;
    // The worker dies after CreateAccessKey: rekey never learns the key (nor its secret half).
    const lost = (await issuer.issue(version, call())).state.accessKeyId;
    expect(keys().map((k) => k.accessKeyId)).toEqual([live.accessKeyId, lost]);
    const { state } = await issuer.issue(version, call());
    expect(keys().map((k) => [k.accessKeyId, k.status])).toEqual([
      [live.accessKeyId, 'Active'],
      [state.accessKeyId, 'Active'],
    ]);
    expect(state.accessKeyId).not.toBe(lost);
    expect(fake.tags.get(userName)?.get(ISSUE_JOURNAL_TAG)).toBe(`${version.versionId} ${live.accessKeyId}`);
    // Another version's attempt finds no orphan: the journal names a different version.
    const next = await issuer.issue(newVersion('k').ref, call()).catch((error: Error) => error);
    expect(next).toBeInstanceOf(Error); // two active keys: the live one is never touched
    expect(keys().map((k) => k.accessKeyId)).toEqual([live.accessKeyId, state.accessKeyId]);
    await close();
  });

  it('a key whose answer was lost is deleted by the rollback, which revokes with no state: the next rotation has room', async () => {
    const live = { accessKeyId: 'AKIALIVE000000000000', status: 'Active' as const };
    const { issuer, keys, close } = open({}, [live]);
    const lost = newVersion('k').ref;
    // CreateAccessKey ran, but its answer never reached rekey (a timeout on the last attempt).
    await issuer.issue(lost, call());
    await issuer.revoke(issued(lost, {}), call());
    await issuer.revoke(issued(lost, {}), call());
    expect(keys().map((k) => k.accessKeyId)).toEqual([live.accessKeyId]);
    const next = await issuer.issue(newVersion('k').ref, call());
    expect(keys().map((k) => [k.accessKeyId, k.status])).toEqual([
      [live.accessKeyId, 'Active'],
      [next.state.accessKeyId, 'Active'],
    ]);
    // Another version's rollback finds nothing of its own in the journal, and a user that is gone is success.
    await issuer.revoke(issued(newVersion('k').ref, {}), call());
    expect(keys()).toHaveLength(2);
    await close();
    const ghost = awsIam.open(awsIam.config.parse({ endpoint: fake.endpoint }), testProviderContext('aws-iam'));
    await ghost.issuer!({ secret: 's', params: awsIam.bindings.issuer!.parse({ userName: 'nobody' }) }).revoke(issued(lost, {}), call());
    await ghost.close!();
  });

  it('at the two-key limit deletes the oldest inactive key, never an active one', async () => {
    const { issuer, keys, close } = open({}, [{ status: 'Inactive' }, { status: 'Inactive' }]);
    await issuer.issue(newVersion('k').ref, call());
    expect(keys().map((k) => k.accessKeyId)).toEqual(['AKIASEED000000000001', expect.stringMatching(/^AKIA/) as unknown]);
    await close();

    const live = open({}, [{ status: 'Active' }, { status: 'Inactive', createDate: new Date(Date.UTC(2025, 0, 1)) }]);
    await live.issuer.issue(newVersion('k').ref, call());
    expect(live.keys().map((k) => [k.accessKeyId, k.status])).toEqual([
      ['AKIASEED000000000000', 'Active'],
      [expect.stringMatching(/^AKIA/), 'Active'],
    ]);
    await live.close();
  });

  it('fails without retry when both keys are active, touching neither', async () => {
    const { issuer, keys, close } = open({}, [{}, {}]);
    const before = fake.calls.length;
    const error = await issuer.issue(newVersion('k').ref, call()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'REKEY_ERR_LIMIT', retryable: false });
    expect(String((error as Error).message)).toContain('two active access keys');
    expect(fake.calls.slice(before)).toEqual(['ListAccessKeys', 'ListUserTags']); // reads only
    expect(keys().map((k) => k.status)).toEqual(['Active', 'Active']);
    await close();
  });

  it('revokes by deactivating first, then deleting; onRevoke: deactivate keeps the key inactive', async () => {
    const { issuer, keys, close } = open();
    const { ref } = newVersion('k');
    const a = await issuer.issue(ref, call());
    const before = fake.calls.length;
    await issuer.revoke(issued(ref, a.state), call());
    expect(fake.calls.slice(before)).toEqual(['UpdateAccessKey', 'DeleteAccessKey']);
    expect(keys()).toHaveLength(0);
    await close();

    const soft = open({ onRevoke: 'deactivate' });
    const b = await soft.issuer.issue(ref, call());
    await soft.issuer.revoke(issued(ref, b.state), call());
    expect(soft.keys().map((k) => k.status)).toEqual(['Inactive']);
    const error = await soft.issuer.verify(issued(ref, b.state), b.value, call()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'REKEY_ERR_VERIFY_FAILED' });
    await soft.close();
  });

  it('maps throttling, denial and an unknown user to rekey codes', async () => {
    const { issuer, close } = open();
    fake.failNext(1, 400, 'Throttling');
    expect(await issuer.issue(newVersion('k').ref, call()).catch((e: unknown) => e)).toMatchObject({
      code: 'REKEY_ERR_THROTTLED',
      retryable: true,
    });
    fake.failNext(1, 500, 'ServiceFailure');
    expect(await issuer.issue(newVersion('k').ref, call()).catch((e: unknown) => e)).toMatchObject({ code: 'REKEY_ERR_UNAVAILABLE' });
    await close();
    // The SDK caches resolved credentials per client, so a fresh instance picks up the wrong key.
    process.env.AWS_ACCESS_KEY_ID = 'AKIAWRONGCALLER00000';
    const wrong = open();
    try {
      const denied = await wrong.issuer.issue(newVersion('k').ref, call()).catch((e: unknown) => e);
      expect(denied).toMatchObject({ code: 'REKEY_ERR_DENIED', retryable: false });
      expect(String((denied as Error).message)).toContain('iam:ListAccessKeys');
    } finally {
      process.env.AWS_ACCESS_KEY_ID = fake.callerKeyId;
      await wrong.close();
    }

    const ghost = awsIam.open(awsIam.config.parse({ endpoint: fake.endpoint }), testProviderContext('aws-iam'));
    const issuer2 = ghost.issuer!({ secret: 's', params: awsIam.bindings.issuer!.parse({ userName: 'nobody' }) });
    expect(await issuer2.issue(newVersion('k').ref, call()).catch((e: unknown) => e)).toMatchObject({ code: 'REKEY_ERR_NOT_FOUND' });
    await ghost.close!();
  });
});

describe('aws-iam-access-key in rekey.yaml', () => {
  it('refuses two managed secrets, or two clients of one, on one IAM user: its two keys are one secret\'s overlap', async () => {
    // Each secret's live key takes one of the user's two slots: the next rotation of either finds two Active keys.
    const { userName, issuer, close } = open();
    const other = awsIam.open(awsIam.config.parse({ endpoint: fake.endpoint }), testProviderContext('aws-iam'));
    try {
      const b = other.issuer!({ secret: 'b', params: awsIam.bindings.issuer!.parse({ userName }) });
      await issuer.issue(newVersion('a').ref, call());
      await b.issue(newVersion('b').ref, call());
      const error = await issuer.issue(newVersion('a').ref, call()).then(() => undefined, (e: unknown) => e as { code: string });
      expect(error?.code).toBe('REKEY_ERR_LIMIT');
    } finally {
      await other.close!();
      await close();
    }
    const problems = (secrets: string) =>
      parseConfig(`providers:\n  vault: { type: local }\n  iam: { type: aws-iam-access-key }\nsecrets:\n${secrets}`, 'rekey.yaml', providers).then(
        () => '',
        (e: unknown) => (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
      );
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { provider: iam, userName: ci-deployer } }
  b: { store: { provider: vault }, issuer: { provider: iam, userName: ci-deployer } }
`)).toMatch(/secrets\.b\.issuer: it would change ci-deployer on iam, as the issuer of a does/);
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { provider: iam, userName: ci-deployer }, clients: [web, jobs] }
`)).toMatch(/secrets\.a\.issuer: /);
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { provider: iam, userName: ci-deployer } }
  b: { store: { provider: vault }, issuer: { provider: iam, userName: ci-reader } }
`)).toBe('');
  });
});
