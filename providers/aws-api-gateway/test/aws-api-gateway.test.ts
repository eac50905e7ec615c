// The aws-api-gateway target through the official SDK client against a local API Gateway fake
// (fake/api-gateway-fake.ts) that speaks REST-JSON, with a stage that demands an API key.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { type ConfigError, RekeyError } from '../../../src/core/errors.js';
import type { ProviderInstance } from '../../../src/core/provider.js';
import type { Target, UsageCounter } from '../../../src/core/ports.js';
import { call, held, newVersion, rejection } from '../../../test/conformance/refs.js';
import { targetConformance } from '../../../test/conformance/target.js';
import { retireAll, send } from '../../../test/support/gateways/index.js';
import { useLoopbackAwsEnv } from '../../../test/support/aws-env.js';
import { providers } from '../../../src/registry.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { awsApiGateway } from '../index.js';
import type { ApiGatewayTargetParams } from '../aws-api-gateway.schema.js';
import { startFakeApiGateway, type FakeApiGateway } from './fake/api-gateway-fake.js';

let restoreEnv: () => void;

let fake: FakeApiGateway;
const opened: Array<ProviderInstance<never, never, ApiGatewayTargetParams>> = [];

beforeAll(async () => {
  restoreEnv = useLoopbackAwsEnv();
  fake = await startFakeApiGateway({ pageLimit: 3 });
});
afterAll(async () => {
  for (const instance of opened) await instance.close?.();
  await fake?.close();
  restoreEnv?.();
});

function openTarget(secret: string, o: { probe?: boolean; config?: Record<string, unknown>; params?: Record<string, unknown> } = {}): Target {
  const config = awsApiGateway.config.parse({
    region: 'eu-west-1',
    endpoint: fake.endpoint,
    maxAttempts: 1,
    usagePlanId: fake.usagePlanId,
    ...(o.probe === false ? {} : { probe: { url: fake.stageUrl, header: 'x-api-key' } }),
    ...o.config,
  });
  const instance = awsApiGateway.open(config, testProviderContext('apigw'));
  opened.push(instance);
  return instance.target!({ secret, params: awsApiGateway.bindings.target!.parse(o.params ?? {}) });
}

targetConformance('aws-api-gateway (probe through the stage)', () => {
  const target = openTarget('conformance-apigw');
  return Promise.resolve({ target, secret: 'conformance-apigw', cleanup: () => retireAll(target) });
}, { probes: true });

targetConformance('aws-api-gateway (verify reads the key back)', () => {
  const target = openTarget('conformance-apigw-read', { probe: false });
  return Promise.resolve({ target, secret: 'conformance-apigw-read', cleanup: () => retireAll(target) });
}, { probes: true });

describe('aws-api-gateway specifics', () => {
  afterEach(async () => {
    fake.failWith = undefined;
    fake.gate = undefined;
    for (const secret of ['payments-api-key', 'clients']) await retireAll(openTarget(secret));
  });

  it('creates a named, tagged, enabled key in the usage plan; the stage accepts it; calls per rotation', async () => {
    const target = openTarget('payments-api-key');
    const [a, b] = [newVersion('payments-api-key', 'payments-app'), newVersion('payments-api-key', 'payments-app')];
    await target.deploy(a.ref, a.value, call());
    fake.operations.clear();
    await target.deploy(b.ref, b.value, call());
    expect(Object.fromEntries(fake.operations)).toEqual({ GetApiKeys: 1, CreateApiKey: 1, CreateUsagePlanKey: 1 });
    const key = [...fake.keys.values()].find((k) => k.name === `rekey/payments-api-key/${b.ref.versionId}`)!;
    expect(key).toMatchObject({ value: b.value.reveal(), enabled: true, customerId: 'payments-app' });
    expect(key.tags).toEqual({ 'rekey:secret': 'payments-api-key', 'rekey:version-id': b.ref.versionId, 'rekey:fingerprint': b.ref.fingerprint });
    expect(fake.plans.get(fake.usagePlanId)!.has(key.id)).toBe(true);

    fake.operations.clear();
    await target.verify(b.ref, b.value, call());
    expect(fake.operations.size).toBe(0); // a probe of the stage, no control-plane call
    await target.retire(a.ref, call());
    expect(Object.fromEntries(fake.operations)).toEqual({ GetApiKeys: 1, UpdateApiKey: 1, DeleteUsagePlanKey: 1, DeleteApiKey: 1 });
    expect((await send(fake.stageUrl, 'x-api-key', a.value.reveal())).status).toBe(403);
    expect((await send(fake.stageUrl, 'x-api-key', b.value.reveal())).status).toBe(200);
  });

  it('deploying again after a lost answer creates nothing new and re-enables a disabled key', async () => {
    const target = openTarget('payments-api-key');
    const v = newVersion('payments-api-key');
    await target.deploy(v.ref, v.value, call());
    const key = [...fake.keys.values()].find((k) => k.value === v.value.reveal())!;
    key.enabled = false;
    await target.deploy(v.ref, v.value, call());
    expect([...fake.keys.values()].filter((k) => k.value === v.value.reveal())).toHaveLength(1);
    expect(key.enabled).toBe(true);
    expect((await send(fake.stageUrl, 'x-api-key', v.value.reveal())).status).toBe(200);
  });

  it('retire disables first, so a failure before the delete leaves a dead key, and the retry finishes the job', async () => {
    const target = openTarget('payments-api-key');
    const v = newVersion('payments-api-key');
    await target.deploy(v.ref, v.value, call());
    fake.failWith = { status: 503, type: 'ServiceUnavailableException', op: 'DeleteUsagePlanKey' };
    const error = await rejection(target.retire(v.ref, call()));
    expect(error.code).toBe('REKEY_ERR_UNAVAILABLE');
    expect(error.retryable).toBe(true);
    expect((await send(fake.stageUrl, 'x-api-key', v.value.reveal())).status).toBe(403);
    expect(await held(target)).toEqual([]);
    fake.failWith = undefined;
    await target.retire(v.ref, call());
    expect([...fake.keys.values()].some((k) => k.value === v.value.reveal())).toBe(false);
  });

  it('two retires of one version at once both succeed: the key deleted by the other one between listing and disabling is retired', async () => {
    // A leak's early block beside the revocation job, a drift repair beside a retirement, a
    // timed-out retire still in flight when its retry runs: each lists the key, then disables it.
    const target = openTarget('payments-api-key');
    const v = newVersion('payments-api-key');
    await target.deploy(v.ref, v.value, call());
    let arrived!: () => void;
    let release!: () => void;
    const holding = new Promise<void>((resolve) => (release = resolve));
    const firstDisable = new Promise<void>((resolve) => (arrived = resolve));
    let disables = 0;
    fake.gate = async (op) => {
      if (op !== 'UpdateApiKey' || (disables += 1) > 1) return;
      arrived();
      await holding;
    };
    const first = target.retire(v.ref, call()).then(() => undefined, (error: unknown) => error);
    await firstDisable; // the first retire listed the key and its disable is held
    await openTarget('payments-api-key').retire(v.ref, call()); // the other one deletes it meanwhile
    release();
    expect(await first).toBeUndefined();
    expect([...fake.keys.values()].some((k) => k.value === v.value.reveal())).toBe(false);
  });

  it('retire finds a key created under another namePrefix (the prefix changed since its deploy) by its tags', async () => {
    const v = newVersion('payments-api-key');
    await openTarget('payments-api-key').deploy(v.ref, v.value, call());
    const renamed = openTarget('payments-api-key', { config: { namePrefix: 'team-payments' } });
    await renamed.retire(v.ref, call());
    expect((await send(fake.stageUrl, 'x-api-key', v.value.reveal())).status).toBe(403);
    expect([...fake.keys.values()].some((k) => k.value === v.value.reveal())).toBe(false);
  });

  it('lists only this secret\'s enabled keys, across pages, with the consumer from customerId', async () => {
    const target = openTarget('clients');
    const versions = ['acme', 'globex', 'initech', 'umbrella'].map((client) => newVersion('clients', client));
    for (const v of versions) await target.deploy(v.ref, v.value, call());
    await openTarget('payments-api-key').deploy(newVersion('payments-api-key').ref, newVersion('payments-api-key').value, call());
    const listed = await held(target);
    expect(listed).toHaveLength(4);
    for (const v of versions) expect(listed).toContainEqual({ versionId: v.ref.versionId, fingerprint: v.ref.fingerprint, consumer: v.ref.consumer });
  });

  it('does not list a key that left the usage plan (the stage refuses it), so the drift check deploys it again', async () => {
    const target = openTarget('payments-api-key');
    const v = newVersion('payments-api-key');
    await target.deploy(v.ref, v.value, call());
    // Someone ran DeleteUsagePlanKey (or the plan was recreated): the key is enabled, but dead.
    const key = [...fake.keys.values()].find((k) => k.value === v.value.reveal())!;
    fake.plans.get(fake.usagePlanId)!.delete(key.id);
    expect((await send(fake.stageUrl, 'x-api-key', v.value.reveal())).status).toBe(403);
    expect(await held(target)).toEqual([]);
    await target.deploy(v.ref, v.value, call());
    expect(await held(target)).toEqual([{ versionId: v.ref.versionId, fingerprint: v.ref.fingerprint, consumer: v.ref.consumer }]);
    expect((await send(fake.stageUrl, 'x-api-key', v.value.reveal())).status).toBe(200);
  });

  it('maps throttling, outages, denial and an unknown usage plan to the right codes', async () => {
    const v = newVersion('payments-api-key');
    const target = openTarget('payments-api-key');
    const cases: Array<[{ status: number; type: string }, string, boolean]> = [
      [{ status: 429, type: 'TooManyRequestsException' }, 'REKEY_ERR_THROTTLED', true],
      [{ status: 503, type: 'ServiceUnavailableException' }, 'REKEY_ERR_UNAVAILABLE', true],
      [{ status: 403, type: 'AccessDeniedException' }, 'REKEY_ERR_DENIED', false],
    ];
    for (const [failure, code, retryable] of cases) {
      fake.failWith = failure;
      const error = await rejection(target.deploy(v.ref, v.value, call()));
      expect([error.code, error.retryable]).toEqual([code, retryable]);
      expect(error.message).not.toContain(v.value.reveal());
    }
    fake.failWith = undefined;
    const lost = await rejection(openTarget('payments-api-key', { params: { usagePlanId: 'nosuchplan' } }).deploy(v.ref, v.value, call()));
    expect([lost.code, lost.retryable]).toEqual(['REKEY_ERR_NOT_FOUND', false]);
    const closed = await rejection(held(openTarget('payments-api-key', { config: { endpoint: 'http://127.0.0.1:1' } })));
    expect(closed.code).toBe('REKEY_ERR_UNAVAILABLE');
  });

  it('needs a usage plan id from the binding or the provider', () => {
    expect(() => openTarget('payments-api-key', { config: { usagePlanId: undefined } })).toThrow(RekeyError);
  });
});

describe('aws-api-gateway as a usage source (GetUsage: per key and day)', () => {
  afterEach(() => retireAll(openTarget('usage-apigw')));

  it("reads each rekey key's requests of yesterday and today as cumulative counters, growing by what GetUsage's daily counts moved", async () => {
    const target = openTarget('usage-apigw');
    const versions = ['acme', 'globex', 'initech', 'umbrella'].map((client) => newVersion('usage-apigw', client));
    for (const v of versions) await target.deploy(v.ref, v.value, call());
    const hit = async (key: string, n: number) => {
      for (let i = 0; i < n; i++) expect((await send(fake.stageUrl, 'x-api-key', key)).status).toBe(200);
    };
    const read = async () => new Map((await target.readUsage!(60_000, call())).counters.map((c) => [c.fingerprint, c]));
    await hit(versions[0]!.value.reveal(), 3);
    fake.operations.clear();
    let counters = await read();
    // Four keys in the plan, pages of three: two GetUsage calls; one listing of the keys.
    expect(fake.operations.get('GetUsage')).toBe(2);
    // The first read only sets where the counts start.
    expect(counters.get(versions[0]!.ref.fingerprint)).toEqual({ fingerprint: versions[0]!.ref.fingerprint, requests: 0, errors: 0, sources: undefined });
    expect(counters.get(versions[1]!.ref.fingerprint)).toMatchObject({ requests: 0 });
    await hit(versions[0]!.value.reveal(), 2);
    await hit(versions[2]!.value.reveal(), 4);
    counters = await read();
    expect(counters.get(versions[0]!.ref.fingerprint)).toMatchObject({ requests: 2 });
    expect(counters.get(versions[2]!.ref.fingerprint)).toMatchObject({ requests: 4 });
    // API Gateway counts late: yesterday's count of a key moves after midnight; the total takes it.
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const keyId = [...fake.keys.values()].find((k) => k.value === versions[1]!.value.reveal())!.id;
    fake.usage.set(keyId, new Map([...(fake.usage.get(keyId) ?? []), [yesterday, 7]]));
    counters = await read();
    expect(counters.get(versions[1]!.ref.fingerprint)).toMatchObject({ requests: 7 });
    expect(counters.get(versions[0]!.ref.fingerprint)).toMatchObject({ requests: 2 });
    // Nothing new: the same totals.
    expect([...(await read()).values()].map((c) => c.requests).sort()).toEqual([...counters.values()].map((c) => c.requests).sort());
  });

  it("a new instance (a new config revision) after midnight is no spike: the collector's next window holds no more than the requests made in it", async () => {
    // What the collector makes of two reads (Target.readUsage): the difference, or all of it when the counter went down.
    const windowOf = (before: UsageCounter | undefined, after: UsageCounter | undefined) => (!after ? 0 : !before || after.requests < before.requests ? after.requests : after.requests - before.requests);
    const target = openTarget('usage-apigw');
    const v = newVersion('usage-apigw', 'acme');
    await target.deploy(v.ref, v.value, call());
    const hit = async (n: number) => {
      for (let i = 0; i < n; i++) expect((await send(fake.stageUrl, 'x-api-key', v.value.reveal())).status).toBe(200);
    };
    const counter = async (t: Target) => (await t.readUsage!(60_000, call())).counters.find((c) => c.fingerprint === v.ref.fingerprint);
    const midnight = Date.parse(`${new Date().toISOString().slice(0, 10)}T00:00:00Z`) + 86_400_000;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(midnight - 86_400_000 - 3600_000); // yesterday's 23:00 (UTC)
      await hit(40);
      vi.setSystemTime(midnight - 60_000); // today's 23:59
      await hit(3);
      await counter(target); // the worker's first read: where its counts start
      vi.setSystemTime(midnight + 60_000); // 00:01: today is yesterday now
      await hit(2);
      const before = await counter(target);
      // An apply opens new provider instances; the collector keeps its previous read.
      const reopened = openTarget('usage-apigw');
      vi.setSystemTime(midnight + 120_000);
      await hit(1);
      // At most that request (a new instance starts its counts at its first read, as a restarted worker does).
      const first = await counter(reopened);
      expect(windowOf(before, first)).toBeLessThanOrEqual(1);
      await hit(2);
      expect(windowOf(first, await counter(reopened))).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('maps a GetUsage failure like any call (an unknown plan is NOT_FOUND)', async () => {
    const target = openTarget('usage-apigw', { params: { usagePlanId: 'nosuchplan' } });
    await expect(target.readUsage!(60_000, call())).rejects.toMatchObject({ code: 'REKEY_ERR_NOT_FOUND' });
  });
});

describe('aws-api-gateway in rekey.yaml', () => {
  it('refuses a target with no usage plan (in the binding or the provider): it could not open, every rotation would fail', async () => {
    const problems = (provider: string, target: string) =>
      parseConfig(`providers:\n  vault: { type: local }\n  gw: { type: aws-api-gateway, region: eu-west-1${provider} }\nsecrets:\n  api: { store: { provider: vault }, issuer: { type: random }, targets: [${target}] }\n`, 'rekey.yaml', providers).then(
        () => '',
        (e: unknown) => (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
      );
    expect(await problems('', 'gw')).toMatch(/secrets\.api\.targets\[0\]: .*usagePlanId/);
    expect(await problems(', usagePlanId: a1b2c3', 'gw')).toBe('');
    expect(await problems('', '{ provider: gw, usagePlanId: a1b2c3 }')).toBe('');
  });
});
