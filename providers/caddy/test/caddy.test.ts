// The caddy target against the real Caddy from Debian (started once for this file).
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Target } from '../../../src/core/ports.js';
import { call, held, newVersion, rejection } from '../../../test/conformance/refs.js';
import { targetConformance } from '../../../test/conformance/target.js';
import { ask, retireAll, send, startBackend, startCaddy, type Backend, type CaddyGateway } from '../../../test/support/gateways/index.js';
import { throughGateway } from '../../../test/support/gateways/suite.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { caddy } from '../index.js';

let backend: Backend;
let gateway: CaddyGateway;

beforeAll(async () => {
  backend = await startBackend();
  gateway = await startCaddy(backend.port);
});
afterAll(async () => {
  await gateway?.stop();
  await backend?.close();
});

function openTarget(secret: string, overrides: Record<string, unknown> = {}, on: CaddyGateway = gateway): Target {
  const config = caddy.config.parse({ ...on.providerConfig, ...overrides });
  return caddy.open(config, testProviderContext('edge-caddy')).target!({ secret, params: caddy.bindings.target!.parse(undefined) });
}

/** Caddy's whole live config, with rekey's mappings blanked out (a new connection each time: Caddy restarts its admin server on every change). */
async function configWithoutKeys(on: CaddyGateway = gateway): Promise<unknown> {
  const config = JSON.parse((await send(`${on.admin}/config/`, 'accept', 'application/json')).body) as { apps: { http: { servers: { api: { routes: Array<{ handle?: Array<Record<string, unknown>> }> } } } } };
  for (const route of config.apps.http.servers.api.routes) {
    for (const handler of route.handle ?? []) if (handler['@id'] === on.handler) handler.mappings = '(rekey)';
  }
  return config;
}

targetConformance(
  'caddy',
  () => {
    const target = openTarget('conformance-caddy');
    return Promise.resolve({ target, secret: 'conformance-caddy', cleanup: () => retireAll(target) });
  },
  { probes: true },
);

throughGateway('caddy', { gateway: () => gateway, target: (secret) => openTarget(secret), secret: 'payments-caddy' });

describe('caddy specifics', () => {
  afterEach(() => retireAll(openTarget('cleanup')));

  it('changes only the mappings of its own handler and leaves the rest of the config untouched', async () => {
    const before = await configWithoutKeys();
    const target = openTarget('scope-caddy');
    const [a, b] = [newVersion('scope-caddy'), newVersion('scope-caddy')];
    await target.deploy(a.ref, a.value, call());
    await target.deploy(b.ref, b.value, call());
    expect(await configWithoutKeys()).toEqual(before);
    await target.retire(a.ref, call());
    expect(await configWithoutKeys()).toEqual(before);
    // The operator's own route in front of rekey's handler still answers.
    expect((await ask(`${gateway.url}healthz`, gateway.header, undefined)).status).toBe(200);
    const mappings: unknown = JSON.parse((await send(`${gateway.admin}/id/${gateway.handler}/mappings`, 'accept', 'application/json')).body);
    expect(mappings).toEqual([{ input: b.value.reveal(), outputs: ['scope-caddy'] }]);
  });

  it('does not overwrite a config change made between its read and its write (If-Match)', async () => {
    const target = openTarget('race-caddy');
    const [a, b] = [newVersion('race-caddy'), newVersion('race-caddy')];
    // Two deploys at once: each read-modify-write must see the other's result.
    await Promise.all([target.deploy(a.ref, a.value, call()), openTarget('race-caddy').deploy(b.ref, b.value, call())]);
    const listed = (await held(target)).map((e) => e.fingerprint).sort();
    expect(listed).toEqual([a.ref.fingerprint, b.ref.fingerprint].sort());
  });

  it('corrects the consumer of a key deployed again with another consumer, keeping one entry', async () => {
    const target = openTarget('consumer-caddy');
    const v = newVersion('consumer-caddy', 'old-consumer');
    await target.deploy(v.ref, v.value, call());
    await target.deploy({ ...v.ref, consumer: 'new-consumer' }, v.value, call());
    expect(await held(target)).toEqual([{ fingerprint: v.ref.fingerprint, consumer: 'new-consumer' }]);
    expect((await ask(gateway.url, gateway.header, v.value.reveal())).body).toBe('consumer=new-consumer');
  });

  it('reports a missing handler @id as a configuration error, not worth retrying', async () => {
    const error = await rejection(held(openTarget('noid-caddy', { handler: 'no_such_handler' })));
    expect(error.code).toBe('REKEY_ERR_INVALID');
    expect(error.retryable).toBe(false);
  });

  it('reports an unreachable admin API as retryable UNAVAILABLE', async () => {
    const error = await rejection(held(openTarget('down-caddy', { admin: `unix:${gateway.dir}/absent.sock` })));
    expect(error.code).toBe('REKEY_ERR_UNAVAILABLE');
    expect(error.retryable).toBe(true);
  });

  it('reads again when the admin API resets the connection, as it does while Caddy swaps its admin server after a change', async () => {
    // An admin API that resets the first read's connection, then answers: Caddy replaces its
    // admin server on every config load, and a read sent just after a change can meet the swap.
    const dir = await mkdtemp(join(tmpdir(), 'rekey-caddy-swap-'));
    let reads = 0;
    const swapping = createServer((request, response) => {
      reads += 1;
      if (reads === 1) return void request.socket.destroy();
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ handler: 'map', '@id': gateway.handler, destinations: ['{rekey_consumer}'], mappings: [] }));
    });
    await new Promise<void>((resolve) => swapping.listen(join(dir, 'admin.sock'), resolve));
    try {
      expect(await held(openTarget('swap-caddy', { admin: `unix:${join(dir, 'admin.sock')}` }))).toEqual([]);
      expect(reads).toBe(2);
    } finally {
      await new Promise((resolve) => swapping.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('speaks the admin API over a unix socket too', async () => {
    const other = await startCaddy(backend.port, { unixAdmin: true });
    try {
      const target = openTarget('unix-caddy', {}, other);
      const v = newVersion('unix-caddy');
      await target.deploy(v.ref, v.value, call());
      await target.verify(v.ref, v.value, call());
      expect((await ask(other.url, other.header, v.value.reveal())).status).toBe(200);
      await target.retire(v.ref, call());
      expect(await held(target)).toEqual([]);
    } finally {
      await other.stop();
    }
  });
});
