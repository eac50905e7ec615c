// POST /v1/token takes its admission slot (src/http/admission.ts, shared with the admin API and
// every other authenticated route) before its body is read. One source opens as many token
// requests as the server admits at once (64), sends their headers and the start of a form body,
// and stops there. None is ever refused for a bad credential, so unless one source's requests
// were capped, and counted against it (while they await authentication, and once they end
// without it), the source could hold every slot, hang up and open the next batch for ever, never
// over its limit: every authenticated caller of the process, here an admin API token, would be
// answered 503 busy. (Several sources at once: delivery-slow-bodies-sources.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { call, tokenFor } from '../support/api.js';
import { startHarness, type Harness } from '../support/harness.js';
import { CAP, firstBatchThenPause, hangUp, holdBatch, OVER_LIMIT_SHARE, PER_SOURCE, refilledSince, slowRequest } from '../support/slow-body.js';

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
  it('hold at most its own cap while its failure allowance lasts, then the share of sources over their limit: the admin API caller is answered 200 throughout', async () => {
    const hungUp = await firstBatchThenPause(slowToken, probe);
    // Its allowance (30, less the first batch's 16 failures, plus what it regained) still covers its own cap.
    const second = await holdBatch(slowToken, CAP - PER_SOURCE, probe);
    try {
      expect(await probe()).toBe(200);
      expect(second.answers).toEqual(Array(CAP - PER_SOURCE).fill(429));
    } finally {
      await hangUp(second.sockets);
    }
    // 32 failures in all: over its limit, so only the share of such sources (and what it regained) is admitted.
    const third = await holdBatch(slowToken, CAP - OVER_LIMIT_SHARE - refilledSince(hungUp), probe);
    try {
      expect(await probe()).toBe(200);
      expect(new Set(third.answers)).toEqual(new Set([429]));
      expect(third.answers.length).toBeLessThanOrEqual(CAP - OVER_LIMIT_SHARE);
    } finally {
      for (const socket of third.sockets) socket.destroy();
    }
  });
});
