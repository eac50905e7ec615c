// POST /v1/token takes its admission slot (src/http/admission.ts, shared with the admin API and
// every other authenticated route) before its body is read. One source opens as many token
// requests as the server admits at once (64), sends their headers and the start of a form body,
// and stops there. None is ever refused for a bad credential, so unless such requests counted
// against their source (while they await authentication, and once they end without it), the
// source could hold every slot, hang up and open the next batch for ever, never over its limit:
// every authenticated caller of the process, here an admin API token, would be answered 503 busy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { call, tokenFor } from '../support/api.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';
import { CAP, firstBatchThenPause, OVER_LIMIT_SHARE, refilledSince, slowRequest } from '../support/slow-body.js';

const ATTACKER = '127.0.0.3';

let h: Harness;
let admin: string;
beforeAll(async () => {
  h = await startHarness({ label: 'delivery-slow-bodies', routes: [deliveryRoutes, adminApiRoutes] });
  admin = await tokenFor(h, 'slow-bodies-reader', ['read']);
}, 60_000);
afterAll(() => h?.stop());

/** A token request whose body stops after its first bytes; `answers` collects the status of any answer. */
const slowToken = (answers: number[]) => slowRequest(h.serving!.url, ATTACKER, { path: '/v1/token', contentType: 'application/x-www-form-urlencoded', start: 'grant_type=' }, answers);

/** An authenticated admin API read: 503 while every slot is held. */
const probe = async (): Promise<number> => (await call(h, '/api/v1/openapi.json', { token: admin })).status;

describe('slow token request bodies from one source', () => {
  it('hold at most the failure allowance of their source and the share of sources over it, in its first batch and after its allowance regained a little: the admin API caller is answered 200', async () => {
    const hungUp = await firstBatchThenPause(slowToken, probe);
    const second: number[] = [];
    const held = await Promise.all(Array.from({ length: CAP }, () => slowToken(second)));
    try {
      await until(async () => second.length >= CAP - OVER_LIMIT_SHARE - refilledSince(hungUp) || (await probe()) === 503, 10_000, 'the second batch admitted or refused');
      expect(await probe()).toBe(200);
      expect(new Set(second)).toEqual(new Set([429]));
      expect(second.length).toBeLessThanOrEqual(CAP - OVER_LIMIT_SHARE);
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});
