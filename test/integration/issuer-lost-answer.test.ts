/**
 * An issue() whose answer never comes back (its call timed out on the last attempt) may still
 * have minted a credential upstream. The rollback asks the issuer to kill it by version id
 * (there is no state to name it): an IAM key left Active would hold the user's second slot, and
 * every later rotation would fail at AWS's two-key limit. Official IAM client, wire fake.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FakeIam } from '../../providers/aws-iam-access-key/test/fake/iam-server.js';
import type { Harness } from '../support/harness.js';
import { iamSecret, startIamHarness, type IamHarness } from '../support/iam-harness.js';
import { journal } from '../support/memory-provider.js';

let env: IamHarness;
let h: Harness;
let iam: FakeIam;
const JOURNAL = `lost-answer-${randomUUID()}`;
journal(JOURNAL);

beforeAll(async () => {
  env = await startIamHarness('lost-answer');
  ({ h, iam } = env);
});
afterAll(() => env?.stop());

it('aws-iam-access-key: a key created by an issue that timed out is deleted by the rollback, and the next rotation succeeds', async () => {
  const secret = `iam-lost-${randomUUID().slice(0, 6)}`;
  const { userName, yaml } = iamSecret(iam, JOURNAL, secret, ['timeout: 3s', 'retry: { attempts: 1, backoff: 50ms }']);
  await h.apply(yaml);
  expect((await h.rotate(secret)).status).toBe('succeeded');
  const live = iam.users.get(userName)!.map((k) => k.accessKeyId);
  expect(live).toHaveLength(1);

  // The key is created, but its answer arrives only after the call's timeout: the run rolls back.
  const held = iam.holdAnswer('CreateAccessKey');
  const lost = await h.rotate(secret);
  await held.reached;
  held.release();
  expect(lost.status).toBe('rolled_back');
  expect(iam.users.get(userName)!.map((k) => k.accessKeyId)).toEqual(live);

  // The user has room for the next rotation's key beside the current one.
  const next = await h.rotate(secret);
  expect([next.status, next.error]).toEqual(['succeeded', null]);
  expect(iam.users.get(userName)!.map((k) => k.status)).toEqual(['Active', 'Active']);
}, 60_000);
