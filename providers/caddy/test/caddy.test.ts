// The caddy target against the real Caddy from Debian (started once for this file).
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type RequestListener, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Target } from '../../../src/core/ports.js';
import { call, held, newVersion, rejection } from '../../../test/conformance/refs.js';
import { targetConformance } from '../../../test/conformance/target.js';
import { ask, retireAll, send, startBackend, startCaddy, type Backend, type CaddyGateway } from '../../../test/support/gateways/index.js';
import { capturedLog } from '../../../test/support/captured-log.js';
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

/** A stand-in for Caddy's admin API on a unix socket, answering with `handle`. */
async function fakeAdmin(handle: RequestListener): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'rekey-caddy-swap-'));
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(join(dir, 'admin.sock'), resolve));
  return {
    endpoint: `unix:${join(dir, 'admin.sock')}`,
    close: async () => {
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The map handler with `mappings`, as Caddy answers a read of its @id. */
function answerHandler(response: ServerResponse, mappings: unknown[]): void {
  response.setHeader('content-type', 'application/json');
  response.end(JSON.stringify({ handler: 'map', '@id': gateway.handler, destinations: ['{rekey_consumer}'], mappings }));
}

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
    let reads = 0;
    const admin = await fakeAdmin((request, response) => {
      reads += 1;
      if (reads === 1) return void request.socket.destroy();
      answerHandler(response, []);
    });
    try {
      expect(await held(openTarget('swap-caddy', { admin: admin.endpoint }))).toEqual([]);
      expect(reads).toBe(2);
    } finally {
      await admin.close();
    }
  });

  it('reads and writes again when a write meets the swap, so a concurrent change of its own does not fail the deploy', async () => {
    // Two deploys at once against the real Caddy: one's write can land while the other's change
    // swaps the admin server. Here the first write is reset before Caddy read it.
    let mappings: Array<{ input: string; outputs: unknown[] }> = [];
    let writes = 0;
    const admin = await fakeAdmin((request, response) => {
      if (request.method === 'GET') return answerHandler(response, mappings);
      writes += 1;
      if (writes === 1) return void request.socket.destroy();
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        mappings = JSON.parse(body) as typeof mappings;
        response.end();
      });
    });
    try {
      const v = newVersion('swap-write-caddy');
      await openTarget('swap-write-caddy', { admin: admin.endpoint }).deploy(v.ref, v.value, call());
      expect(mappings).toEqual([{ input: v.value.reveal(), outputs: [v.ref.consumer] }]);
      expect(writes).toBe(2);
    } finally {
      await admin.close();
    }
  });

  it('an error answer that quotes config and keys reaches neither the error nor the log (trust boundary: errors carry no value)', async () => {
    // Caddy quotes the config it refused: the keys rekey sent, and any other key-like text in it.
    const live = newVersion('echo-caddy');
    const stranger = `rk_live_${'Zq8'.repeat(12)}`;
    const quoted = 'loading config: invalid mappings';
    const admin = await fakeAdmin((request, response) => {
      if (request.method === 'GET') return answerHandler(response, [{ input: live.value.reveal(), outputs: [live.ref.consumer] }]);
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        response.statusCode = 400;
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ error: `${quoted}: ${body} (also ${stranger})` }));
      });
    });
    try {
      const { log, lines } = capturedLog();
      const config = caddy.config.parse({ ...gateway.providerConfig, admin: admin.endpoint });
      const target = caddy.open(config, testProviderContext('edge-caddy', { log })).target!({ secret: 'echo-caddy', params: caddy.bindings.target!.parse(undefined) });
      const v = newVersion('echo-caddy');
      const error = await rejection(target.deploy(v.ref, v.value, call()));
      // What the engine does with a failed step: log it.
      log.error({ err: error, secret: 'echo-caddy' }, 'deploy failed');
      expect(error.code).toBe('REKEY_ERR_INVALID');
      for (const text of [error.message, lines.join('\n')]) {
        for (const secret of [v.value.reveal(), live.value.reveal(), stranger, quoted]) expect(text).not.toContain(secret);
      }
      expect(error.message).toContain(`PATCH /id/${gateway.handler}/mappings answered 400`);
    } finally {
      await admin.close();
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
