// Slow token request bodies from several unauthenticated addresses at once (review of the delivery
// surface, finding 1). POST /v1/token takes its admission slot before its body is read, and
// admission's cap is shared by every authenticated route of the process (src/http/admission.ts).
// Each address was held to its failure allowance alone, so two addresses filled the whole cap and
// every authenticated caller (admin API, delivery, leak reports) was answered 503 for as long as
// fresh addresses kept it up. Now addresses that never authenticated hold at most their share of
// the cap (each at most its own cap), and callers whose address authenticated before keep the rest.
// Each case waits on the server's own count of requests in flight, never on a sleep.
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { deliveryRoutes, GRANT_TYPE, JWT_TOKEN_TYPE } from '../../src/delivery/routes.js';
import type { Admission } from '../../src/http/admission.js';
import type { RouteModule } from '../../src/http/server.js';
import { tokenFor } from '../support/api.js';
import { appDelivery, attestationToken } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';
import { CAP, PER_SOURCE, slowRequest, UNPROVEN_SHARE } from '../support/slow-body.js';

let h: Harness;
let admin: string;
let admission: Admission;
/** Hands the test the server's admission, to wait on its counts. */
const captureAdmission: RouteModule = (_app, _runtime, shared) => {
  admission = shared.admission;
};

beforeAll(async () => {
  h = await startHarness({ label: 'delivery-slow-bodies-sources', routes: [deliveryRoutes, adminApiRoutes, captureAdmission] });
  admin = await tokenFor(h, 'sources-reader', ['read']);
  await h.apply(
    appDelivery(
      '  payments-api-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_pay_ }, grace: 1h }\n',
      '    payments: { authenticator: app, subjects: ["app:*"], value: { secret: payments-api-key, ttl: 5m } }\n',
    ),
  );
  for (const secret of ['app-attestation', 'api-signing', 'payments-api-key']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 180_000);
afterAll(() => h?.stop());

/** A request from `from` (127.0.0.0/8 is all loopback): the status of its answer (a stream is hung up once its head came). */
function statusFrom(from: string, path: string, headers: Record<string, string>, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, h.serving!.url), { method: body === undefined ? 'GET' : 'POST', headers, localAddress: from, agent: false }, (res) => {
      resolve(res.statusCode ?? 0);
      res.destroy();
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** An authenticated admin API read from `from`: its status. */
const probeFrom = (from: string) => statusFrom(from, '/api/v1/openapi.json', { authorization: `Bearer ${admin}` });

/** CAP token requests from `from` whose body stops after its first bytes; `answers` collects the status of any answer. */
function slowTokens(from: string, answers: number[]): Promise<Socket[]> {
  const open = () => slowRequest(h.serving!.url, from, { path: '/v1/token', contentType: 'application/x-www-form-urlencoded', start: 'grant_type=' }, answers);
  return Promise.all(Array.from({ length: CAP }, open));
}

/** Nothing left in flight from the case before (its hung-up requests give their slots back as the server sees them close). */
const idle = () => until(() => Promise.resolve(admission.counts().inFlight === 0), 10_000, 'no request in flight');

describe('slow token request bodies from several addresses', () => {
  it('leave a caller that never authenticated before admitted while nothing floods the server', async () => {
    await idle();
    expect(await probeFrom('127.0.0.20')).toBe(200);
  });

  it('fill only the share of addresses that never authenticated: a caller whose address authenticated before is answered 200', async () => {
    await idle();
    expect(await probeFrom('127.0.0.1')).toBe(200); // its address is proven from now on
    const answers: number[] = [];
    const sources = ['127.0.0.3', '127.0.0.4', '127.0.0.5'];
    const held = (await Promise.all(sources.map((from) => slowTokens(from, answers)))).flat();
    try {
      // Every request seen: those admitted hold the unproven share, all others were refused.
      await until(() => Promise.resolve(admission.counts().unproven === UNPROVEN_SHARE && answers.length === held.length - UNPROVEN_SHARE), 10_000, 'the flood admitted up to its share');
      expect(await probeFrom('127.0.0.1')).toBe(200);
      // A caller that never authenticated waits for the flood (the share is what it can take).
      expect(await probeFrom('127.0.0.21')).toBe(503);
      expect(admission.counts()).toMatchObject({ inFlight: UNPROVEN_SHARE, unproven: UNPROVEN_SHARE });
    } finally {
      for (const socket of held) socket.destroy();
    }
  });

  it('leave callers whose token exchange, value read or change stream authenticated from their address answered', async () => {
    await idle();
    const credential = await attestationToken(h, 'app-attestation', { sub: 'app:proven', ttlSeconds: 600 });
    const form = new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: credential, subject_token_type: JWT_TOKEN_TYPE, audience: 'api.example.com' }).toString();
    const bearer = { authorization: `Bearer ${credential}` };
    const workloads = {
      '127.0.0.31': () => statusFrom('127.0.0.31', '/v1/token', { 'content-type': 'application/x-www-form-urlencoded' }, form),
      '127.0.0.32': () => statusFrom('127.0.0.32', '/v1/secrets/payments-api-key', bearer),
      '127.0.0.33': () => statusFrom('127.0.0.33', '/v1/events', bearer),
    };
    const all = async () => Promise.all(Object.values(workloads).map((call) => call()));
    expect(await all()).toEqual([200, 200, 200]); // each proves its address
    const answers: number[] = [];
    const held = (await Promise.all(['127.0.0.3', '127.0.0.4'].map((from) => slowTokens(from, answers)))).flat();
    try {
      await until(() => Promise.resolve(admission.counts().unproven === UNPROVEN_SHARE && answers.length === held.length - UNPROVEN_SHARE), 10_000, 'the flood admitted up to its share');
      expect(await all()).toEqual([200, 200, 200]);
    } finally {
      for (const socket of held) socket.destroy();
    }
  });

  it('from one address hold at most its own cap: a caller that never authenticated before is still admitted', async () => {
    await idle();
    const answers: number[] = [];
    const held = await slowTokens('127.0.0.7', answers);
    try {
      await until(() => Promise.resolve(answers.length + admission.counts().unproven === CAP), 10_000, 'every request of the batch admitted or refused');
      expect(admission.counts().unproven).toBe(PER_SOURCE);
      expect(new Set(answers)).toEqual(new Set([429]));
      expect(await probeFrom('127.0.0.22')).toBe(200);
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});
