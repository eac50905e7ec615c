// Requests that never reach authentication cannot starve an authenticated sender either. One
// source opens as many leak reports as the server admits at once (64), sends their headers and
// the start of a body, and stops there: each holds a slot until the server's request timeout, or
// until the source hangs up and opens the next batch. None is ever refused for a bad signature,
// so unless one source's requests were capped, and counted against it (while they await
// authentication, and once they end without it), the source would never be over its limit and
// could hold every slot for ever: the genuine sender's signed report would get 503.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send } from '../../support/gateways/index.js';
import type { Admission } from '../../../src/http/admission.js';
import type { RouteModule } from '../../../src/http/server.js';
import { leakRoutes } from '../../../src/leaks/routes.js';
import { CAP, firstBatchThenPause, hangUp, holdBatch, OVER_LIMIT_SHARE, PER_SOURCE, refilledSince, slowRequest, UNPROVEN_SHARE } from '../../support/slow-body.js';
import { gatewaySecretYaml, postFrom, providersYaml, startLeakEnv, storedValue, until, type LeakEnv } from './support.js';

const GITHUB = '/webhooks/github-secret-scanning';
const SENDER = '127.0.0.2';
const ATTACKER = '127.0.0.3';
const PROBE = '127.0.0.4';

let e: LeakEnv;
let admission: Admission;
/** Hands the test the server's admission, to wait on its counts. */
const captureAdmission: RouteModule = (_app, _runtime, shared) => {
  admission = shared.admission;
};
const secret = `slow-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  e = await startLeakEnv('slow-bodies', { routes: [leakRoutes, captureAdmission] });
  await e.h.apply(`${providersYaml(e)}\nsecrets:${gatewaySecretYaml(secret, 'onLeak: block-first')}\nleaks:\n  github: { publicKeys: ${e.github.keysFile} }\n`);
  expect((await e.h.rotate(secret)).status).toBe('succeeded');
});
afterAll(() => e?.stop());

const report = (token: string) => JSON.stringify([{ token, type: 'rekey_api_key', url: 'https://github.com/x/y/blob/main/z', source: 'content' }]);

/** A leak report from `from` whose body stops after its first bytes; `answers` collects the status of any answer. */
const slowReportFrom = (from: string, answers: number[]) => slowRequest(e.h.serving!.url, from, { path: GITHUB, contentType: 'application/json', start: '[{"token": "' }, answers);
const slowReport = (answers: number[]) => slowReportFrom(ATTACKER, answers);

/** A signed report of a token rekey never issued, from another address: 503 while every slot is held. */
async function probe(): Promise<number> {
  const body = report(`rk_test_${randomUUID().replaceAll('-', '')}`);
  return (await postFrom(PROBE, e.h.serving!.url, GITHUB, body, e.github.headers(body))).status;
}

describe('slow bodies from one source', () => {
  it('hold at most its own cap while its failure allowance lasts, then the share of sources over their limit: the signed report is answered 200', async () => {
    const hungUp = await firstBatchThenPause(slowReport, probe);
    // Its allowance (30, less the first batch's 16 failures, plus what it regained) still covers its own cap.
    const second = await holdBatch(slowReport, CAP - PER_SOURCE, probe);
    try {
      expect(await probe()).toBe(200);
      expect(second.answers).toEqual(Array(CAP - PER_SOURCE).fill(429));
    } finally {
      await hangUp(second.sockets);
    }
    // 32 failures in all: over its limit, so only the share of such sources (and what it regained) is admitted.
    const third = await holdBatch(slowReport, CAP - OVER_LIMIT_SHARE - refilledSince(hungUp), probe);
    try {
      console.log(JSON.stringify({ refusedInThirdBatch: third.answers.length }));
      const key = (await storedValue(e.h, secret)).reveal();
      expect((await send(e.gateway.url, e.gateway.header, key)).status).toBe(200);
      const body = report(key);
      const answer = await postFrom(SENDER, e.h.serving!.url, GITHUB, body, e.github.headers(body));
      expect(answer.status).toBe(200);
      await until(async () => (await send(e.gateway.url, e.gateway.header, key)).status === 401, 10_000, 'HAProxy refusing the key');
      expect(new Set(third.answers)).toEqual(new Set([429]));
      expect(third.answers.length).toBeLessThanOrEqual(CAP - OVER_LIMIT_SHARE);
    } finally {
      for (const socket of third.sockets) socket.destroy();
    }
  });

  it('from more addresses fill only the share of addresses that never authenticated: a sender whose report authenticated from its address before is answered 200', async () => {
    await until(() => Promise.resolve(admission.counts().inFlight === 0), 10_000, 'no request in flight');
    expect(await probe()).toBe(200); // its address is proven from now on
    const answers: number[] = [];
    const held = (await Promise.all(['127.0.0.5', '127.0.0.6'].map((from) => Promise.all(Array.from({ length: CAP }, () => slowReportFrom(from, answers)))))).flat();
    try {
      await until(() => Promise.resolve(admission.counts().unproven === UNPROVEN_SHARE && answers.length === held.length - UNPROVEN_SHARE), 10_000, 'the flood admitted up to its share');
      expect(await probe()).toBe(200);
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});
