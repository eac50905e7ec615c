// describeRotation on Google Secret Manager, through the official client and the gRPC fake: rekey's
// schedule mirrored into the secret's rotation and topics, idempotently, cleared only when it is
// rekey's own, and what the service then publishes at next_rotation_time.
import { randomUUID } from 'node:crypto';
import type { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import type { ProviderInstance } from '../../../src/core/provider.js';
import type { SecretStore } from '../../../src/core/ports.js';
import { call, newVersion, stored } from '../../../test/conformance/refs.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import gcpSecretManager, { ROTATION_ANNOTATION, type GcpSecretManagerStoreBinding } from '../index.js';
import { officialClient, startFakeSecretManager, type FakeSecretManager } from './fake/secret-manager-fake.js';

const PROJECT = 'rekey-test';
const TOPIC = `projects/${PROJECT}/topics/rekey-rotations`;
const WEEKLY = { schedule: { cron: '0 3 * * 1', timezone: 'UTC' }, graceMs: 86_400_000 };

let fake: FakeSecretManager;
let gcp: ProviderInstance<GcpSecretManagerStoreBinding>;
let raw: SecretManagerServiceClient;

const uniqueName = () => `rekey-rot-${randomUUID()}`;
const storeFor = (params: { name: string; topic?: string }): SecretStore =>
  gcp.store!({ secret: 'payments-api-key', params: gcpSecretManager.bindings.store!.parse(params) });
const secretOf = (name: string) => fake.model.secrets.get(name)!;

beforeAll(async () => {
  fake = await startFakeSecretManager(PROJECT);
  gcp = gcpSecretManager.open(
    gcpSecretManager.config.parse({ project: PROJECT, apiEndpoint: '127.0.0.1', port: fake.port, insecure: true }),
    testProviderContext('gcp-test'),
  );
  raw = officialClient(fake.port);
});

afterAll(async () => {
  await raw?.close();
  await gcp?.close?.();
  await fake?.close();
});

describe('gcp-secret-manager: describeRotation', () => {
  it('sets rotation (next Monday, every 7 days) and the topic, keeping aliases and annotations', async () => {
    const name = uniqueName();
    const store = storeFor({ name, topic: TOPIC });
    const v = newVersion('rot');
    const next = stored(v.ref, (await store.writePending(v.ref, v.value, call())).storeVersionId);
    await store.promote(next, undefined, null, call());
    const before = { ...secretOf(name).aliases };

    const summary = await store.describeRotation!(WEEKLY, call());
    const secret = secretOf(name);
    expect(secret.topics).toEqual([TOPIC]);
    expect(secret.rotation?.periodSeconds).toBe(7 * 86_400);
    expect(secret.rotation!.next!.getUTCDay()).toBe(1);
    expect(secret.rotation!.next!.getUTCHours()).toBe(3);
    expect(secret.rotation!.next!.getTime()).toBeGreaterThan(Date.now() + 300_000);
    expect(secret.aliases).toEqual(before);
    expect(secret.annotations[ROTATION_ANNOTATION]).toBe('0 3 * * 1|UTC|604800');
    expect(secret.annotations).toHaveProperty(`rekey-version-${next.storeVersionId}`);
    expect(summary).toMatch(/^Secret Manager rotation every 7d, next \d{4}-.*Z, topics projects\/rekey-test\/topics\/rekey-rotations$/);
  });

  it('a concurrent writer of the same schedule (etag mismatch) is re-read, not reported as a conflict', async () => {
    const name = uniqueName();
    const store = storeFor({ name, topic: TOPIC });
    await store.describeRotation!({ graceMs: 0 }, call()); // creates the secret, no schedule
    // Another process (a worker retrying the pending write) sets the same rotation between our read and update.
    const next = new Date(Date.now() + 7 * 86_400_000);
    fake.before('UpdateSecret', (model) => {
      const secret = model.secrets.get(name)!;
      secret.annotations = { ...secret.annotations, [ROTATION_ANNOTATION]: '0 3 * * 1|UTC|604800' };
      secret.rotation = { next, periodSeconds: 7 * 86_400 };
      secret.topics = [TOPIC];
      secret.etag = '"changed-by-a-worker"';
    });
    fake.resetCalls();
    const summary = await store.describeRotation!(WEEKLY, call());
    expect(summary).toBe(`Secret Manager rotation every 7d, next ${next.toISOString().replace(/\.\d+Z$/, '.000Z')}, topics ${TOPIC}`);
    expect(fake.calls).toEqual({ GetSecret: 2, UpdateSecret: 1 });
  });

  it('is idempotent: an unchanged schedule costs one GetSecret and no write', async () => {
    const store = storeFor({ name: uniqueName(), topic: TOPIC });
    await store.describeRotation!(WEEKLY, call());
    fake.resetCalls();
    await store.describeRotation!(WEEKLY, call());
    expect(fake.calls).toEqual({ GetSecret: 1 });
  });

  it('flags an irregular schedule as approximate', async () => {
    const summary = await storeFor({ name: uniqueName(), topic: TOPIC }).describeRotation!(
      { schedule: { cron: '0 3 * * 1-5', timezone: 'UTC' }, graceMs: 0 },
      call(),
    );
    expect(summary).toContain('every 1d (approximate');
  });

  it('clears its own schedule when rekey.yaml drops it, keeping the topic', async () => {
    const name = uniqueName();
    const store = storeFor({ name, topic: TOPIC });
    await store.describeRotation!(WEEKLY, call());
    expect(await store.describeRotation!({ graceMs: 0 }, call())).toBe('rekey rotation schedule cleared in Secret Manager');
    expect(secretOf(name).rotation).toBeUndefined();
    expect(secretOf(name).topics).toEqual([TOPIC]);
    expect(secretOf(name).annotations).not.toHaveProperty(ROTATION_ANNOTATION);
  });

  it('leaves a rotation schedule set outside rekey alone', async () => {
    const name = uniqueName();
    await raw.createSecret({
      parent: `projects/${PROJECT}`,
      secretId: name,
      secret: {
        replication: { automatic: {} },
        topics: [{ name: TOPIC }],
        rotation: { nextRotationTime: { seconds: Math.floor(Date.now() / 1000) + 86_400 }, rotationPeriod: { seconds: 30 * 86_400 } },
      },
    });
    fake.resetCalls();
    const summary = await storeFor({ name }).describeRotation!({ graceMs: 0 }, call());
    expect(summary).toContain('set outside rekey kept');
    expect(fake.calls).toEqual({ GetSecret: 1 });
    expect(secretOf(name).rotation?.periodSeconds).toBe(30 * 86_400);
  });

  it('without a topic anywhere, says why nothing was set instead of failing', async () => {
    const name = uniqueName();
    const summary = await storeFor({ name }).describeRotation!(WEEKLY, call());
    expect(summary).toContain('set `topic:` in the store binding');
    expect(secretOf(name).rotation).toBeUndefined();
  });

  it('UpdateSecret denied: DENIED naming secretmanager.secrets.update', async () => {
    const store = storeFor({ name: uniqueName(), topic: TOPIC });
    fake.deny('UpdateSecret');
    try {
      const error = await store.describeRotation!(WEEKLY, call()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ProviderError);
      expect((error as ProviderError).code).toBe('REKEY_ERR_DENIED');
      expect((error as ProviderError).message).toContain('secretmanager.secrets.update');
    } finally {
      fake.allow('UpdateSecret');
    }
  });

  it('the fake publishes SECRET_ROTATE as the service does, and advances next_rotation_time', async () => {
    const name = uniqueName();
    await storeFor({ name, topic: TOPIC }).describeRotation!(WEEKLY, call());
    const first = secretOf(name).rotation!.next!;
    const message = fake.model.rotationNotification(name);
    expect(message.attributes).toMatchObject({
      eventType: 'SECRET_ROTATE',
      dataFormat: 'JSON_API_V1',
      secretId: `projects/${fake.model.projectNumber}/secrets/${name}`,
    });
    expect(JSON.parse(Buffer.from(message.data, 'base64').toString())).toMatchObject({ name: message.attributes.secretId });
    expect(secretOf(name).rotation!.next!.getTime() - first.getTime()).toBe(7 * 86_400_000);
  });
});
