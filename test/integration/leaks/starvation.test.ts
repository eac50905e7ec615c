// Unauthenticated traffic cannot starve an authenticated sender (issue 12, item 1). From the
// genuine sender's own address, 60 unsigned reports at once, then 2 per second; a correctly
// signed GitHub report of a live key sent meanwhile is answered 200 and the key is refused at
// a real HAProxy within 1 s. Then the same through an ingress (nginx, appending the client to
// X-Forwarded-For) with the trust setting the chart renders when its ingress is enabled, the
// flood spoofing the sender's address in X-Forwarded-For. Default limits throughout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, sleep, startIngress, type Ingress } from '../../support/gateways/index.js';
import { containerOf, render, Rendered } from '../../unit/helm/chart.js';
import { gatewaySecretYaml, postFrom, providersYaml, startLeakEnv, storedValue, until, type LeakEnv } from './support.js';

const GITHUB = '/webhooks/github-secret-scanning';
const SENDER = '127.0.0.2';
const ATTACKER = '127.0.0.3';

/** The leaks: section with every limit at its default. */
const leaks = (e: LeakEnv) => `
leaks:
  github: { publicKeys: ${e.github.keysFile} }
`;

/** The flooded secret's report, and unflooded reports just before and after it. */
type Secrets = Record<'before' | 'flooded' | 'after', string>;

/** Block-first secrets on the HAProxy gateway, each with a live key. */
async function liveKeys(e: LeakEnv, secrets: Secrets): Promise<void> {
  const yaml = Object.values(secrets).map((name) => gatewaySecretYaml(name, 'onLeak: block-first')).join('');
  await e.h.apply(`${providersYaml(e)}\nsecrets:${yaml}\n${leaks(e)}`);
  for (const name of Object.values(secrets)) expect((await e.h.rotate(name)).status).toBe('succeeded');
}

const report = (token: string) => JSON.stringify([{ token, type: 'rekey_api_key', url: 'https://github.com/x/y/blob/main/z', source: 'content' }]);

interface Outcome {
  answer: number;
  /** Signed report sent -> first request with the key refused by HAProxy (ms). */
  blockedMs: number;
  /** The same for reports of other keys with no flood, just before and just after (the machine's pace now). */
  calmBlockedMs: [number, number];
  flood: { requests: number; statuses: Record<number, number> };
  /** What the flood and the report left behind. */
  recorded: { leakReports: number; revocations: number; leakAuditEvents: number };
}

/** Sends a signed report of `secret`'s live key from `from` (when `ready` resolves) and times until HAProxy refuses the key. */
async function reportAndTime(e: LeakEnv, secret: string, base: string, from: string, ready: Promise<void> = Promise.resolve()): Promise<{ answer: number; blockedMs: number }> {
  const key = (await storedValue(e.h, secret)).reveal();
  expect((await send(e.gateway.url, e.gateway.header, key)).status).toBe(200);
  await ready;
  const body = report(key);
  const started = performance.now();
  const answered = postFrom(from, base, GITHUB, body, e.github.headers(body));
  let blockedMs = Number.POSITIVE_INFINITY;
  while (performance.now() - started < 10_000) {
    if ((await send(e.gateway.url, e.gateway.header, key)).status === 401) {
      blockedMs = performance.now() - started;
      break;
    }
  }
  return { answer: (await answered).status, blockedMs };
}

/**
 * Floods the GitHub receiver from `floodFrom` with unsigned reports of `secret`'s live key (60
 * at once, then one every 500 ms). The signed report goes right after one of the drip's requests
 * is answered, once the drip has run long enough to use up whatever a per-source bucket refilled
 * while the burst was served (twice the burst's duration, plus a second).
 */
async function underFlood(e: LeakEnv, secrets: Secrets, base: string, o: { floodFrom: string; senderFrom: string; floodHeaders?: Record<string, string> }): Promise<Outcome> {
  const calm = async (secret: string) => {
    const sample = await reportAndTime(e, secret, base, o.senderFrom);
    expect(sample.answer).toBe(200);
    return sample.blockedMs;
  };
  const calmBefore = await calm(secrets.before);
  const db = e.h.runtime.db;
  const counts = async () => ({
    leakReports: await db.leakReport.count(),
    revocations: await db.run.count({ where: { kind: 'revocation' } }),
    leakAuditEvents: await db.auditEvent.count({ where: { action: 'leak.reported' } }),
  });
  const before = await counts();
  const body = report((await storedValue(e.h, secrets.flooded)).reveal());
  const statuses: Record<number, number> = {};
  let requests = 0;
  const unsigned = () => {
    requests += 1;
    return postFrom(o.floodFrom, base, GITHUB, body, { 'content-type': 'application/json', ...o.floodHeaders }).then(
      (a) => void (statuses[a.status] = (statuses[a.status] ?? 0) + 1),
      () => void (statuses[0] = (statuses[0] ?? 0) + 1),
    );
  };
  const burstStarted = performance.now();
  await Promise.all(Array.from({ length: 60 }, unsigned));
  const burstMs = performance.now() - burstStarted;
  let dripping = true;
  const drips: Array<Promise<void>> = [];
  const drip = (async () => {
    while (dripping) {
      drips.push(unsigned());
      await sleep(500);
    }
  })();
  const warmup = Math.max(4, Math.ceil((2 * burstMs + 1000) / 500));
  const ready = until(() => Promise.resolve(drips.length > warmup), 60_000).then(() => drips[warmup]);
  const flooded = await reportAndTime(e, secrets.flooded, base, o.senderFrom, ready);
  await sleep(1000); // the drip goes on after the report
  dripping = false;
  await drip;
  await Promise.all(drips);
  const after = await counts();
  const calmAfter = await calm(secrets.after);
  return {
    ...flooded,
    calmBlockedMs: [calmBefore, calmAfter],
    flood: { requests, statuses },
    recorded: {
      leakReports: after.leakReports - before.leakReports,
      revocations: after.revocations - before.revocations,
      leakAuditEvents: after.leakAuditEvents - before.leakAuditEvents,
    },
  };
}

function expectSenderUnharmed(outcome: Outcome): void {
  console.log(JSON.stringify(outcome));
  expect(outcome.answer).toBe(200);
  // 1 s; on a machine so loaded that a report with no flood around it takes longer, three times that.
  expect(outcome.blockedMs).toBeLessThan(Math.max(1000, 3 * Math.max(...outcome.calmBlockedMs)));
  // Only the signed report left a trace; none of the flood's did, and nothing answered 5xx.
  expect(outcome.recorded).toEqual({ leakReports: 1, revocations: 1, leakAuditEvents: 1 });
  expect(Object.keys(outcome.flood.statuses).filter((s) => Number(s) >= 500 || s === '0')).toEqual([]);
  expect(outcome.flood.statuses[401]).toBeGreaterThan(0);
}

describe('unsigned flood from the sender’s own address (no proxy trusted)', () => {
  let e: LeakEnv;
  const secrets = { before: 'calm-direct-1', flooded: 'starve-direct', after: 'calm-direct-2' };

  beforeAll(async () => {
    e = await startLeakEnv('starve-direct');
    await liveKeys(e, secrets);
  });
  afterAll(() => e?.stop());

  it('answers the signed report 200 and HAProxy refuses the key within 1 s', async () => {
    expectSenderUnharmed(await underFlood(e, secrets, e.h.serving!.url, { floodFrom: SENDER, senderFrom: SENDER }));
  });
});

describe('unsigned flood through the ingress, spoofing the sender in X-Forwarded-For (the chart’s trust setting)', () => {
  let e: LeakEnv;
  let ingress: Ingress;
  const secrets = { before: 'calm-ingress-1', flooded: 'starve-ingress', after: 'calm-ingress-2' };
  // What the chart gives the server when its ingress is enabled.
  const hosts = [{ host: 'rekey.example.com', paths: [{ path: '/webhooks', pathType: 'Prefix' }] }];
  const chart = new Rendered(render(undefined, ['--set', 'server.ingress.enabled=true', '--set-json', `server.ingress.hosts=${JSON.stringify(hosts)}`]));
  const trustProxy = containerOf(chart.workload('server')!, 'server').env!.find((v) => v.name === 'REKEY_TRUST_PROXY')!.value!;

  beforeAll(async () => {
    e = await startLeakEnv('starve-ingress', { settings: { REKEY_TRUST_PROXY: trustProxy } });
    ingress = await startIngress(e.h.serving!.url);
    await liveKeys(e, secrets);
  });
  afterAll(async () => {
    await ingress?.stop();
    await e?.stop();
  });

  it('trusts exactly the ingress hop', () => {
    expect(trustProxy).toBe('1');
  });

  it('answers the signed report 200 and HAProxy refuses the key within 1 s', async () => {
    const outcome = await underFlood(e, secrets, ingress.url, { floodFrom: ATTACKER, senderFrom: SENDER, floodHeaders: { 'x-forwarded-for': SENDER } });
    expectSenderUnharmed(outcome);
  });
});
