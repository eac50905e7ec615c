// AWS Health AWS_RISK_CREDENTIALS_EXPOSED through the EventBridge API-destination receiver,
// with the aws-iam-access-key issuer against the fake IAM (the official SDK on the wire).
// An AWS access key is accepted or refused by AWS itself, so here "the gateway" is IAM:
// the exposed key ends up deleted there and the fresh one Active.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeIam, type FakeIam } from '../../../providers/aws-iam-access-key/test/fake/iam-server.js';
import { useLoopbackAwsEnv } from '../../support/aws-env.js';
import { awsHealthEvent, leaksYaml, post, providersYaml, startLeakEnv, storedValue, until, type LeakEnv } from './support.js';

let e: LeakEnv;
let iam: FakeIam;
let restoreEnv: () => void;
const secret = `ci-${randomUUID().slice(0, 8)}`;
const userName = `deployer-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  iam = await startFakeIam();
  // The SDK's default chain reads these first; nothing ever asks a metadata service.
  restoreEnv = useLoopbackAwsEnv({ AWS_ACCESS_KEY_ID: iam.callerKeyId });
  iam.users.set(userName, []);
  e = await startLeakEnv('aws');
  await e.h.apply(`${providersYaml(e, `  aws-iam: { type: aws-iam-access-key, endpoint: "${iam.endpoint}" }`)}
secrets:
  ${secret}:
    store: { provider: vault }
    issuer: { provider: aws-iam, userName: ${userName} }
    grace: 1h
    retry: { attempts: 3, backoff: 100ms }
${leaksYaml(e)}`);
  expect((await e.h.rotate(secret)).status).toBe('succeeded');
});
afterAll(async () => {
  await e?.stop();
  await iam?.close();
  restoreEnv?.();
});

const keyIdOf = async () => (JSON.parse((await storedValue(e.h, secret)).reveal()) as { accessKeyId: string }).accessKeyId;
const headers = () => ({ 'content-type': 'application/json; charset=utf-8', 'x-rekey-token': e.secrets.aws });

describe('AWS Health receiver', () => {
  it('an exposed access key is deleted at IAM and replaced by an Active one; the event is answered per key', async () => {
    const exposed = await keyIdOf();
    expect(iam.users.get(userName)!.map((k) => [k.accessKeyId, k.status])).toEqual([[exposed, 'Active']]);
    const eventId = randomUUID();
    const answer = await post(e.h.serving!.url, '/webhooks/aws-health', awsHealthEvent(exposed, eventId), headers());
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ results: [{ accessKeyId: exposed, outcome: 'rotating', duplicate: false }] });
    await until(() => Promise.resolve(!iam.users.get(userName)!.some((k) => k.accessKeyId === exposed)));
    const fresh = await keyIdOf();
    expect(fresh).not.toBe(exposed);
    expect(iam.users.get(userName)!.map((k) => [k.accessKeyId, k.status])).toEqual([[fresh, 'Active']]);

    // EventBridge retries the same event, and AWS Health sends a copy to the backup region under
    // another event id but the same eventArn: the first answer again, one report, one revocation.
    const again = await post(e.h.serving!.url, '/webhooks/aws-health', awsHealthEvent(exposed, eventId), headers());
    expect(JSON.parse(again.body)).toEqual({ results: [{ accessKeyId: exposed, outcome: 'rotating', duplicate: true }] });
    const backup = await post(e.h.serving!.url, '/webhooks/aws-health', awsHealthEvent(exposed, randomUUID(), eventId), headers());
    expect(JSON.parse(backup.body)).toEqual({ results: [{ accessKeyId: exposed, outcome: 'rotating', duplicate: true }] });
    expect(await e.h.runtime.db.leakReport.count({ where: { source: 'aws-health' } })).toBe(1);
    const revocations = await e.h.runtime.db.run.count({ where: { kind: 'revocation', secret: { name: secret } } });
    expect(revocations).toBe(1);
  });

  it('an unknown access key id is recorded by that id only; other Health events are acknowledged and ignored', async () => {
    const unknown = 'AKIA' + 'Z'.repeat(16);
    const answer = await post(e.h.serving!.url, '/webhooks/aws-health', awsHealthEvent(`IAM_USER/someone/${unknown}`), headers());
    expect(JSON.parse(answer.body)).toEqual({ results: [{ accessKeyId: unknown, outcome: 'unknown', duplicate: false }] });
    expect(await e.h.runtime.db.leakReport.findFirstOrThrow({ where: { fingerprint: `aws-access-key:${unknown}` } })).toMatchObject({ versionId: null });

    const other = JSON.stringify({ ...JSON.parse(awsHealthEvent(unknown)), detail: { eventTypeCode: 'AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED' } });
    expect(await post(e.h.serving!.url, '/webhooks/aws-health', other, headers())).toEqual({
      status: 200,
      body: JSON.stringify({ status: 'ignored', reason: 'not an aws.health AWS_RISK_CREDENTIALS_EXPOSED event' }),
    });
  });

  it('refuses a missing or wrong API destination header with 401 and records nothing', async () => {
    const before = await e.h.runtime.db.leakReport.count();
    const body = awsHealthEvent('AKIA' + 'Y'.repeat(16));
    expect((await post(e.h.serving!.url, '/webhooks/aws-health', body, { 'content-type': 'application/json' })).status).toBe(401);
    expect((await post(e.h.serving!.url, '/webhooks/aws-health', body, { ...headers(), 'x-rekey-token': `${e.secrets.aws}x` })).status).toBe(401);
    expect(await e.h.runtime.db.leakReport.count()).toBe(before);
  });
});
