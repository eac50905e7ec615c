// The gateway targets' verify probe (src/core/kit/probe.ts) against a local stand-in for a gateway.
import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { probeKey, probeSchema } from '../../src/core/kit/probe.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { listenLoopback } from '../support/fake-http.js';
import { call, rejection } from '../conformance/refs.js';

const VALID = 'rk_test_valid0123456789';
const servers: Array<ReturnType<typeof createServer>> = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

/** A gateway answering `status` to every request whatever its key, or 200 for VALID and 401 otherwise. */
async function gateway(answer: (key: string | undefined) => { status: number; location?: string }): Promise<string> {
  const server = createServer((req, res) => {
    const { status, location } = answer(req.headers['x-api-key'] as string | undefined);
    res.writeHead(status, location ? { location } : {}).end();
  });
  servers.push(server);
  return `http://127.0.0.1:${await listenLoopback(server)}/v1/ping`;
}

describe('probeKey', () => {
  it('passes for a key the gateway lets through, fails for one it refuses', async () => {
    const probe = probeSchema.parse({ url: await gateway((key) => ({ status: key === VALID ? 200 : 401 })) });
    await probeKey(probe, SecretValue.of(VALID), call(), 'gw');
    const error = await rejection(probeKey(probe, SecretValue.of('rk_test_never_deployed'), call(), 'gw'));
    expect([error.code, error.retryable]).toEqual(['REKEY_ERR_VERIFY_FAILED', true]);
  });

  it('fails when the gateway redirects before it looks at the key (plain HTTP sent to HTTPS): any key would pass', async () => {
    // Caddy's automatic HTTPS, HAProxy's `http-request redirect scheme https`: the same 308 for every key.
    const url = await gateway(() => ({ status: 308, location: 'https://api.example.com/v1/ping' }));
    const probe = probeSchema.parse({ url });
    const error = await rejection(probeKey(probe, SecretValue.of('rk_test_never_deployed'), call(), 'gw'));
    expect(error.code).toBe('REKEY_ERR_VERIFY_FAILED');
    expect(error.message).toContain('308');
    expect(error.message).not.toContain('never_deployed');
  });

  it('tries a connection the gateway reset again within its timeout (a reload right after a deploy), never a status', async () => {
    // Caddy's reload after a config change resets the connections it holds, the probe's fresh one included.
    let connections = 0;
    let requests = 0;
    const url = await gateway((key) => {
      requests++;
      return { status: key === VALID ? 200 : 401 };
    });
    const server = servers.at(-1)!;
    server.prependListener('connection', (socket) => {
      if (++connections <= 2) socket.resetAndDestroy();
    });
    const probe = probeSchema.parse({ url, timeoutMs: 10_000 });
    await probeKey(probe, SecretValue.of(VALID), call(), 'gw');
    expect([connections, requests]).toEqual([3, 1]);
    // A refusal by status is the gateway's answer: asked once.
    const error = await rejection(probeKey(probe, SecretValue.of('rk_test_never_deployed'), call(), 'gw'));
    expect([error.code, error.message, connections, requests]).toEqual(['REKEY_ERR_VERIFY_FAILED', expect.stringContaining('401'), 4, 2]);
  });

  it('with untilAccepted, asks again after a refusal until the key is accepted, and fails with the refusal once its timeout ends', async () => {
    // An API server hears of a keyset deploy asynchronously: it refuses the new key for a moment.
    let requests = 0;
    const url = await gateway((key) => ({ status: key === VALID && ++requests > 2 ? 200 : 401 }));
    await probeKey(probeSchema.parse({ url, timeoutMs: 10_000 }), SecretValue.of(VALID), call(), 'gw', { untilAccepted: true });
    expect(requests).toBe(3);
    const error = await rejection(probeKey(probeSchema.parse({ url, timeoutMs: 300 }), SecretValue.of('rk_test_never_deployed'), call(), 'gw', { untilAccepted: true }));
    expect([error.code, error.message]).toEqual(['REKEY_ERR_VERIFY_FAILED', expect.stringContaining('answered 401')]);
  });

  it('fails once its timeout ends while the gateway keeps resetting', async () => {
    let connections = 0;
    const url = await gateway(() => ({ status: 200 }));
    servers.at(-1)!.prependListener('connection', (socket) => {
      connections++;
      socket.resetAndDestroy();
    });
    const error = await rejection(probeKey(probeSchema.parse({ url, timeoutMs: 300 }), SecretValue.of(VALID), call(), 'gw'));
    expect([error.code, error.retryable]).toEqual(['REKEY_ERR_VERIFY_FAILED', true]);
    expect(error.message).toContain('could not be completed');
    expect(connections).toBeGreaterThan(1);
  });
});
