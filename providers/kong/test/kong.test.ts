// The kong target against a local fake of Kong's Admin API and key-auth proxy (fake/kong-admin.ts).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Target } from '../../../src/core/ports.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { call, held, newVersion, rejection } from '../../../test/conformance/refs.js';
import { targetConformance } from '../../../test/conformance/target.js';
import { retireAll, send } from '../../../test/support/gateways/index.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { kong } from '../index.js';
import { startFakeKong, type FakeKong } from './fake/kong-admin.js';

const TOKEN_ENV = `PROVIDERTEST_KONG_TOKEN_${process.pid}`;
let fake: FakeKong;

beforeAll(async () => {
  process.env[TOKEN_ENV] = 'kong-admin-token-for-tests';
  fake = await startFakeKong({ adminToken: 'kong-admin-token-for-tests', pageSize: 3 });
});
afterAll(async () => {
  delete process.env[TOKEN_ENV];
  await fake?.close();
});

function openTarget(secret: string, o: { probe?: boolean; consumer?: string; config?: Record<string, unknown> } = {}): Target {
  const config = kong.config.parse({
    adminUrl: fake.adminUrl,
    adminToken: `\${env:${TOKEN_ENV}}`,
    ...(o.probe === false ? {} : { probe: { url: fake.proxyUrl, header: 'apikey' } }),
    ...o.config,
  });
  const params = kong.bindings.target!.parse(o.consumer ? { consumer: o.consumer } : {});
  return kong.open(config, testProviderContext('gw-kong')).target!({ secret, params });
}

targetConformance('kong (probe through the proxy)', () => {
  const target = openTarget('conformance-kong');
  return Promise.resolve({ target, secret: 'conformance-kong', cleanup: () => retireAll(target) });
}, { probes: true });

targetConformance('kong (verify reads the credential back)', () => {
  const target = openTarget('conformance-kong-admin', { probe: false });
  return Promise.resolve({ target, secret: 'conformance-kong-admin', cleanup: () => retireAll(target) });
}, { probes: true });

describe('kong specifics', () => {
  afterEach(async () => {
    fake.down = false;
    for (const secret of ['team/payments', 'clients', 'override']) await retireAll(openTarget(secret));
  });

  it('creates the consumer once, tags the credential without the value, and the proxy accepts the key for that consumer', async () => {
    const target = openTarget('team/payments');
    const v = newVersion('team/payments', 'payments-service');
    fake.resetCounts();
    await target.deploy(v.ref, v.value, call());
    // Absent consumer: PUT (404), POST /consumers, PUT again.
    expect(Object.fromEntries(fake.requests)).toEqual({ 'PUT /consumers/{id}/key-auth/{id}': 2, 'POST /consumers': 1 });
    const credential = fake.credentials.get(v.ref.versionId)!;
    expect(credential.tags).toEqual(['rekey', 'rekey-secret:team~payments', `rekey-version:${v.ref.versionId}`, `rekey-fp:${v.ref.fingerprint}`]);
    expect(JSON.stringify(credential.tags)).not.toContain(v.value.reveal());
    expect([...fake.consumers.values()].map((c) => c.username)).toContain('payments-service');
    const answer = await send(fake.proxyUrl, 'apikey', v.value.reveal());
    expect(answer).toEqual({ status: 200, body: 'consumer=payments-service' });

    // Deploying again (a retry after a lost answer) is one PUT onto the same credential.
    fake.resetCounts();
    await target.deploy(v.ref, v.value, call());
    expect(Object.fromEntries(fake.requests)).toEqual({ 'PUT /consumers/{id}/key-auth/{id}': 1 });
    expect([...fake.credentials.values()].filter((c) => c.key === v.value.reveal())).toHaveLength(1);
  });

  it('counts Admin API calls for one rotation: deploy 1, verify 0 (a proxy probe), retire 2', async () => {
    const target = openTarget('team/payments');
    const [a, b] = [newVersion('team/payments'), newVersion('team/payments')];
    await target.deploy(a.ref, a.value, call());
    fake.resetCounts();
    await target.deploy(b.ref, b.value, call());
    await target.verify(b.ref, b.value, call());
    await target.retire(a.ref, call());
    expect(Object.fromEntries(fake.requests)).toEqual({ 'PUT /consumers/{id}/key-auth/{id}': 1, 'GET /key-auths': 1, 'DELETE /key-auths/{id}': 1 });
    expect((await send(fake.proxyUrl, 'apikey', a.value.reveal())).status).toBe(401);
    expect((await send(fake.proxyUrl, 'apikey', b.value.reveal())).status).toBe(200);
  });

  it('puts per-client keys on each version\'s consumer and lists them, across pages', async () => {
    const target = openTarget('clients');
    const versions = ['acme', 'globex', 'initech', 'umbrella'].map((client) => newVersion('clients', client));
    for (const v of versions) await target.deploy(v.ref, v.value, call());
    const listed = await held(target);
    // The fake pages 3 at a time: 4 entries means the offset was followed.
    expect(listed).toHaveLength(4);
    for (const v of versions) expect(listed).toContainEqual({ versionId: v.ref.versionId, fingerprint: v.ref.fingerprint });
    expect((await send(fake.proxyUrl, 'apikey', versions[1]!.value.reveal())).body).toBe('consumer=globex');
  });

  it('uses the binding\'s consumer over the version\'s', async () => {
    const target = openTarget('override', { consumer: 'edge-clients' });
    const v = newVersion('override', 'ignored');
    await target.deploy(v.ref, v.value, call());
    expect(await held(target)).toEqual([{ versionId: v.ref.versionId, fingerprint: v.ref.fingerprint }]);
    expect((await send(fake.proxyUrl, 'apikey', v.value.reveal())).body).toBe('consumer=edge-clients');
  });

  it('refuses to create consumers when told not to', async () => {
    const target = openTarget('override', { consumer: 'nobody-here', config: { createConsumers: false } });
    const v = newVersion('override');
    const error = await rejection(target.deploy(v.ref, v.value, call()));
    expect(error.code).toBe('REKEY_ERR_NOT_FOUND');
    expect(error.retryable).toBe(false);
  });

  it('reports a wrong Admin token as DENIED, not retryable, and never echoes the token', async () => {
    process.env[`${TOKEN_ENV}_WRONG`] = 'not-the-token';
    try {
      const target = openTarget('override', { config: { adminToken: `\${env:${TOKEN_ENV}_WRONG}` } });
      const error = await rejection(held(target));
      expect(error.code).toBe('REKEY_ERR_DENIED');
      expect(error.retryable).toBe(false);
      expect(error.message).not.toContain('not-the-token');
    } finally {
      delete process.env[`${TOKEN_ENV}_WRONG`];
    }
  });

  it('reports a Kong answering 503 or not listening as retryable UNAVAILABLE', async () => {
    const v = newVersion('override');
    fake.down = true;
    const error = await rejection(openTarget('override').deploy(v.ref, v.value, call()));
    expect(error.code).toBe('REKEY_ERR_UNAVAILABLE');
    expect(error.retryable).toBe(true);
    fake.down = false;
    const closed = openTarget('override', { config: { adminUrl: 'http://127.0.0.1:1' } });
    expect((await rejection(closed.deploy(v.ref, v.value, call()))).code).toBe('REKEY_ERR_UNAVAILABLE');
  });

  it('does not follow an Admin API redirect: the key and the token are never sent on, and the answer is INVALID', async () => {
    const elsewhere: string[] = [];
    const sink = createServer((req, res) => {
      elsewhere.push(`${req.method} ${req.url}`);
      res.end('{}');
    });
    const redirector = createServer((req, res) => {
      res.writeHead(307, { location: `http://127.0.0.1:${(sink.address() as AddressInfo).port}${req.url}` }).end();
    });
    await Promise.all([sink, redirector].map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))));
    try {
      const target = openTarget('override', { config: { adminUrl: `http://127.0.0.1:${(redirector.address() as AddressInfo).port}` } });
      const v = newVersion('override');
      expect((await rejection(target.deploy(v.ref, v.value, call()))).code).toBe('REKEY_ERR_INVALID');
      expect(elsewhere).toEqual([]);
    } finally {
      for (const server of [sink, redirector]) server.close();
    }
  });

  it('refuses a value another credential holds, without echoing Kong\'s message (it names the key)', async () => {
    const target = openTarget('override');
    const v = newVersion('override');
    await target.deploy(v.ref, v.value, call());
    const clash = { ...v.ref, versionId: newVersion('override').ref.versionId };
    const error = await rejection(target.deploy(clash, SecretValue.of(v.value.reveal()), call()));
    expect(error.code).toBe('REKEY_ERR_INVALID');
    expect(error.message).not.toContain(v.value.reveal());
  });

  it('only accepts ${env:NAME} for the Admin token', () => {
    expect(kong.config.safeParse({ adminUrl: fake.adminUrl, adminToken: 'inline-token' }).success).toBe(false);
  });
});

describe('kong as a usage source (Prometheus metrics per consumer)', () => {
  afterEach(async () => {
    fake.restartMetrics();
    await retireAll(openTarget('usage-a'));
    await retireAll(openTarget('usage-b'));
  });

  const proxied = async (key: string, n: number, status = 200) => {
    for (let i = 0; i < n; i++) {
      const answer = await fetch(fake.proxyUrl, { headers: { apikey: key, 'x-fake-status': String(status) } });
      expect(answer.status).toBe(status);
    }
  };

  it("reads each consumer's requests and errors as cumulative counters of its keys, growing by what moved", async () => {
    const a = openTarget('usage-a', { consumer: 'o"brien\\ops' });
    const b = openTarget('usage-b');
    const [va, vb] = [newVersion('usage-a'), newVersion('usage-b', 'globex')];
    await a.deploy(va.ref, va.value, call());
    await b.deploy(vb.ref, vb.value, call());
    const read = async () => new Map((await a.readUsage!(10_000, call())).counters.map((c) => [c.fingerprint, c]));
    await proxied(va.value.reveal(), 3);
    await fetch(fake.proxyUrl, { headers: { apikey: 'not-a-key' } });
    // The first read of a node only sets where its counters start.
    expect([...(await read()).values()]).toEqual(expect.arrayContaining([{ fingerprint: va.ref.fingerprint, requests: 0, errors: 0, sources: undefined }]));
    await proxied(va.value.reveal(), 4);
    await proxied(va.value.reveal(), 2, 500);
    await proxied(vb.value.reveal(), 5, 429);
    let counters = await read();
    expect(counters.get(va.ref.fingerprint)).toEqual({ fingerprint: va.ref.fingerprint, requests: 6, errors: 2, sources: undefined });
    expect(counters.get(vb.ref.fingerprint)).toEqual({ fingerprint: vb.ref.fingerprint, requests: 5, errors: 5, sources: undefined });
    // A restarted node counts from zero: the totals only grow, by its new requests.
    fake.restartMetrics();
    await proxied(va.value.reveal(), 1);
    counters = await read();
    expect(counters.get(va.ref.fingerprint)).toMatchObject({ requests: 7, errors: 2 });
    expect(counters.get(vb.ref.fingerprint)).toMatchObject({ requests: 5, errors: 5 });
  });

  it("reports a consumer's traffic on each of its keys (Kong does not count per key)", async () => {
    const a = openTarget('usage-a', { consumer: 'shared-consumer' });
    const [old, next] = [newVersion('usage-a'), newVersion('usage-a')];
    await a.deploy(old.ref, old.value, call());
    await a.deploy(next.ref, next.value, call());
    await a.readUsage!(10_000, call());
    await proxied(next.value.reveal(), 3);
    const counters = (await a.readUsage!(10_000, call())).counters.filter((c) => [old.ref.fingerprint, next.ref.fingerprint].includes(c.fingerprint));
    expect(counters.map((c) => c.requests)).toEqual([3, 3]);
  });

  it("counts a consumer's new key from when it is first seen, not the consumer's traffic before it (a rotation's new key is no spike)", async () => {
    const a = openTarget('usage-a', { consumer: 'rotating-consumer' });
    const [old, next] = [newVersion('usage-a'), newVersion('usage-a')];
    await a.deploy(old.ref, old.value, call());
    const read = async () => new Map((await a.readUsage!(10_000, call())).counters.map((c) => [c.fingerprint, c]));
    await read();
    await proxied(old.value.reveal(), 40);
    expect((await read()).get(old.ref.fingerprint)).toMatchObject({ requests: 40 });
    // The new key appears: the collector counts a key it has not seen before from zero, so its
    // first figure must be what it has had since it is tracked (nothing yet), not the consumer's 40.
    await a.deploy(next.ref, next.value, call());
    let counters = await read();
    expect(counters.get(next.ref.fingerprint)).toMatchObject({ requests: 0, errors: 0 });
    await proxied(next.value.reveal(), 3);
    counters = await read();
    expect([counters.get(old.ref.fingerprint)!.requests, counters.get(next.ref.fingerprint)!.requests]).toEqual([43, 3]);
  });
});
