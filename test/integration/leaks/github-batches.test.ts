// GitHub batches its matches, and anyone can push checksum-valid strings in rekey's key format for
// GitHub to send: a real key in a delivery of 2,000 matches must be blocked about as fast as one sent
// alone, wherever it sits among the unknown ones.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateKey } from '../../../src/core/key-format.js';
import { send } from '../../support/gateways/index.js';
import { gatewaySecretYaml, leaksYaml, post, providersYaml, sha256Hex, startLeakEnv, storedValue, until, type LeakEnv } from './support.js';

let e: LeakEnv;
const names = { alone: `ghb-alone-${randomUUID().slice(0, 6)}`, first: `ghb-first-${randomUUID().slice(0, 6)}`, middle: `ghb-middle-${randomUUID().slice(0, 6)}`, last: `ghb-last-${randomUUID().slice(0, 6)}` };

beforeAll(async () => {
  e = await startLeakEnv('github-batches');
  await e.h.apply(`${providersYaml(e)}\nsecrets:${Object.values(names).map((n) => gatewaySecretYaml(n, 'onLeak: block-first')).join('')}\n${leaksYaml(e)}`);
  for (const name of Object.values(names)) expect((await e.h.rotate(name)).status).toBe('succeeded');
}, 60_000);
afterAll(() => e?.stop());

const match = (token: string) => ({ token, type: 'rekey_api_key', url: '', source: 'content' });

/**
 * Sends `tokens` in one signed delivery; once rekey has stamped the report of `leaked` blocked (its
 * last target retired it), returns that report's leak-to-blocked time and the delivery's answer.
 */
async function deliver(tokens: string[], leaked: string) {
  const body = JSON.stringify(tokens.map(match));
  const answered = post(e.h.serving!.url, '/webhooks/github-secret-scanning', body, e.github.headers(body));
  const fingerprint = e.h.runtime.engine.deps.fingerprint(leaked);
  const blocked = () => e.h.runtime.db.leakReport.findFirst({ where: { source: 'github', fingerprint, blockedAt: { not: null } } });
  await until(async () => (await blocked()) !== null, 60_000, 'the leaked key blocked');
  const report = (await blocked())!;
  const answer = await answered;
  expect((await send(e.gateway.url, e.gateway.header, leaked)).status).toBe(401);
  return { ms: report.blockedAt!.getTime() - report.receivedAt.getTime(), answer };
}

it('a live key among 1,999 unknown matches is blocked within a few times its time alone, wherever it sits', async () => {
  // First, a delivery of unknown matches alone: GitHub's keys loaded, the paths warm, before anything is timed.
  const warm = JSON.stringify(Array.from({ length: 1999 }, () => match(generateKey('rk_test_'))));
  expect((await post(e.h.serving!.url, '/webhooks/github-secret-scanning', warm, e.github.headers(warm))).status).toBe(200);
  const alone = (await storedValue(e.h, names.alone)).reveal();
  const idle = await deliver([alone], alone);
  expect(idle.answer.status).toBe(200);
  // What the extra 1,999 matches may cost it: fingerprinting them and one lookup for all, not one each.
  const bound = 4 * idle.ms + 500;
  for (const [secret, at] of [[names.first, 0], [names.middle, 1000], [names.last, 1999]] as const) {
    const leaked = (await storedValue(e.h, secret)).reveal();
    const tokens = Array.from({ length: 1999 }, () => generateKey('rk_test_'));
    tokens.splice(at, 0, leaked);
    const { ms, answer } = await deliver(tokens, leaked);
    console.log(`github batch: the live key at ${at} of 2000 blocked after ${ms} ms (alone: ${idle.ms} ms)`);
    expect(ms, `the live key at ${at} of 2000`).toBeLessThan(bound);
    // The answer keeps GitHub's order: one label per match, the live key's true_positive where it was sent.
    expect(answer.status).toBe(200);
    const labels = JSON.parse(answer.body) as Array<{ token_hash: string; label: string }>;
    expect(labels.map((l) => l.token_hash)).toEqual(tokens.map(sha256Hex));
    expect(labels.flatMap((l, i) => (l.label === 'true_positive' ? [i] : []))).toEqual([at]);
  }
  // Every unknown match is still recorded, by fingerprint only.
  expect(await e.h.runtime.db.leakReport.count({ where: { source: 'github', outcome: 'unknown' } })).toBe(4 * 1999);
}, 180_000);
