/**
 * A rotation rolled back after the store had already promoted its version (the last attempt's
 * promote lost its response): the store must give `current` back to the current version AND keep
 * `previous` on the version whose grace is still running, as it was before the rotation. Readers
 * of the `previous` stage (the hmac-key verifier's store reader, apps reading AWSPREVIOUS or the
 * `previous` alias) accept that version until its grace ends. Cloud stores are their wire-protocol
 * fakes driven by the official SDKs.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../conformance/refs.js';
import { startHarness, type Harness } from '../support/harness.js';
import { startCloudFakes, type CloudFakes } from '../events/cloud-fakes.js';
import { journal } from '../support/memory-provider.js';
import { AwsApiError } from '../../providers/aws-secrets-manager/test/fake/secrets-model.js';

/** The aws-secrets-manager provider's default `maxAttempts` (SDK attempts per call). */
const AWS_MAX_ATTEMPTS = 3;

let h: Harness;
let fakes: CloudFakes;
const id = randomUUID().slice(0, 8);
const names = { aws: `rekey-rb/${id}`, gcp: `rekey-rb-${id}` };
const secrets = { aws: `rb-aws-${id}`, gcp: `rb-gcp-${id}` };
/** A brand-new AWS secret whose first rotation fails at its target, for the first-version case. */
const fresh = { name: `rekey-rb/fresh-${id}`, secret: `rb-fresh-${id}`, journal: `rb-fresh-${id}` };
/** An AWS secret holding a value from before rekey, whose first rotation fails after the store promoted it. */
const adopted = { name: `rekey-rb/adopted-${id}`, secret: `rb-adopted-${id}` };
/** A brand-new Google secret whose first rotation fails after the store promoted it. */
const first = { name: `rekey-rb-first-${id}`, secret: `rb-first-${id}` };

/** The value each of rekey's stages holds in the fake store. */
const stagesOf: Record<'aws' | 'gcp', () => Record<string, string | undefined>> = {
  aws: () => {
    const out: Record<string, string | undefined> = {};
    for (const v of fakes.aws.model.secrets.get(names.aws)!.versions.values()) for (const s of v.stages) out[s] = v.value;
    return { current: out.AWSCURRENT, previous: out.AWSPREVIOUS, pending: out.AWSPENDING };
  },
  gcp: () => {
    const secret = fakes.gcp.model.secrets.get(names.gcp)!;
    const at = (alias: string) => secret.versions.find((v) => v.number === secret.aliases[alias])?.data?.toString('utf8');
    return { current: at('current'), previous: at('previous'), pending: at('pending') };
  },
};

/** The next promote moves AWSCURRENT; the removal of AWSPENDING that follows is throttled on every SDK attempt. */
function throttleAwsPendingRemoval(): void {
  const model = fakes.aws.model;
  const update = model.UpdateSecretVersionStage.bind(model);
  model.UpdateSecretVersionStage = (input) => {
    if (input.VersionStage === 'AWSPENDING') {
      model.UpdateSecretVersionStage = update;
      fakes.aws.throttle(AWS_MAX_ATTEMPTS - 1, 'UpdateSecretVersionStage');
      throw new AwsApiError('ThrottlingException', 'Rate exceeded');
    }
    return update(input);
  };
}

async function versions(secret: string) {
  return h.runtime.db.version.findMany({ where: { secret: { name: secret } }, orderBy: { number: 'asc' }, select: { number: true, state: true, fingerprint: true } });
}

beforeAll(async () => {
  fakes = await startCloudFakes();
  h = await startHarness({ label: 'store-rollback' });
  /** A secret on one of the fakes' stores, one attempt per rotation (a failure rolls back at once). */
  const secretYaml = (name: string, store: string, storeName: string, extra = '') => `  ${name}:
    store: { provider: ${store}, name: ${storeName} }
    issuer: { type: random, prefix: rk_rb_ }${extra}
    grace: 1h
    retry: { attempts: 1, backoff: 50ms }
    timeout: 5s`;
  await h.apply(
    [
      'providers:',
      fakes.providers,
      `  edge: { type: memory, journal: ${fresh.journal} }`,
      'secrets:',
      secretYaml(adopted.secret, 'aws', adopted.name),
      secretYaml(first.secret, 'gcp', first.name),
      secretYaml(fresh.secret, 'aws', fresh.name, '\n    targets: [edge]'),
      ...(['aws', 'gcp'] as const).map((store) => secretYaml(secrets[store], store, names[store])),
    ].join('\n'),
  );
});

afterAll(async () => {
  await h?.stop();
  await fakes?.close();
});

describe.each(['aws', 'gcp'] as const)('%s store', (store) => {
  it('a rollback after the store promoted keeps `previous` on the version still in its grace', async () => {
    const secret = secrets[store];
    for (let i = 0; i < 2; i++) expect((await h.rotate(secret)).status).toBe('succeeded');
    const [v1, v2] = await versions(secret);
    const before = stagesOf[store]();
    expect([fingerprint(before.current!), fingerprint(before.previous!)]).toEqual([v2!.fingerprint, v1!.fingerprint]);

    // Rotation 3's promote reaches the store, but its answer is lost; it was the last attempt.
    if (store === 'gcp') {
      // The pending value is read back right before the deploy; the next UpdateSecret is promote's.
      fakes.gcp.before('AccessSecretVersion', () => fakes.gcp.loseResponse('UpdateSecret'));
    } else {
      throttleAwsPendingRemoval();
    }
    const run = await h.rotate(secret);
    expect(run.status).toBe('rolled_back');

    expect((await versions(secret)).map((v) => v.state)).toEqual(['previous', 'current', 'failed']);
    const after = stagesOf[store]();
    expect(after.current && fingerprint(after.current)).toBe(v2!.fingerprint);
    expect(after.previous && fingerprint(after.previous)).toBe(v1!.fingerprint);
    expect(after.pending).toBeUndefined();
  });
});

it('aws: the rolled-back first version of a new secret, which AWS keeps as AWSCURRENT, never becomes AWSPREVIOUS', async () => {
  const edge = journal(fresh.journal);
  edge.fail('verify:edge', 1, false);
  expect((await h.rotate(fresh.secret)).status).toBe('rolled_back');
  expect((await h.rotate(fresh.secret)).status).toBe('succeeded');
  const [v1, v2] = await versions(fresh.secret);
  expect([v1!.state, v2!.state]).toEqual(['failed', 'current']);
  const labels = Object.fromEntries(
    [...fakes.aws.model.secrets.get(fresh.name)!.versions.values()].map((v) => [fingerprint(v.value), [...v.stages].sort()]),
  );
  // v1 was retired from its target and revoked: nothing may serve it as a fallback (AWSPREVIOUS).
  expect(labels).toEqual({ [v1!.fingerprint!]: [], [v2!.fingerprint!]: ['AWSCURRENT'] });
});

it('gcp: a first rotation rolled back after the store promoted it leaves no `current` alias and finishes', async () => {
  fakes.gcp.before('AccessSecretVersion', () => fakes.gcp.loseResponse('UpdateSecret'));
  const run = await h.rotate(first.secret);
  expect(run.status).toBe('rolled_back');
  const [v1] = await versions(first.secret);
  expect(v1!.state).toBe('failed');
  const secret = fakes.gcp.model.secrets.get(first.name)!;
  // The revoked value must not be served as current to consumers reading versions/current.
  expect(secret.aliases).toEqual({});
  expect(secret.versions.map((v) => v.state)).toEqual(['DISABLED']);
});

it('aws: a first rotation of a secret with a value from before rekey, rolled back after the store promoted it, gives AWSCURRENT back to that value', async () => {
  fakes.aws.model.CreateSecret({ Name: adopted.name, SecretString: 'value-from-before-rekey', ClientRequestToken: randomUUID() });
  throttleAwsPendingRemoval();
  const run = await h.rotate(adopted.secret);
  expect(run.status).toBe('rolled_back');
  const labels = Object.fromEntries([...fakes.aws.model.secrets.get(adopted.name)!.versions.values()].map((v) => [v.value.startsWith('rk_rb_') ? 'rekey' : v.value, [...v.stages].sort()]));
  // Consumers reading AWSCURRENT get the value they had, not the rolled-back (revoked) one.
  expect(labels).toEqual({ 'value-from-before-rekey': ['AWSCURRENT'], rekey: [] });
});
