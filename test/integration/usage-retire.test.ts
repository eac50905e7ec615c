/**
 * Usage-aware retirement through a real HAProxy (issue 18): a per-client family (alpha, beta)
 * with `retire: { whenUnusedFor: 3s, maxGrace: 24s }` and a 12 s grace; the worker reads the
 * stick tables every second. Both clients' keys are rotated while traffic flows; beta moves to
 * its new key, alpha keeps sending its old one. beta's previous key, unused, is retired long
 * before its grace ends; alpha's is reported still in use by client alpha (`rekey status`, the
 * admin API, the `version.still-used` notification), held past its grace (HAProxy keeps
 * answering 200 to it) and retired at maxGrace.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { formatStatus, secretStatus } from '../../src/cli/status.js';
import { call, tokenFor } from '../support/api.js';
import { startBackend, startHaproxy, type Backend, type HaproxyGateway } from '../support/gateways/index.js';
import { unexpectedAnswers } from '../support/gateways/keyed-load.js';
import { keyedLoadProcess, type KeyedLoadProcess } from '../support/gateways/keyed-load-process.js';
import { startHarness, type Harness } from '../support/harness.js';
import { type NoticeReceiver, startNoticeReceiver } from '../support/notice-receiver.js';
import { until } from '../support/poll.js';

const family = `ur-${randomUUID().slice(0, 8)}`;
const alpha = `${family}/alpha`;
const beta = `${family}/beta`;
const GRACE_MS = 12_000;
const MAX_GRACE_MS = 24_000;
const WHSEC = `whsec_${randomBytes(32).toString('base64')}`;

let h: Harness;
let backend: Backend;
let haproxy: HaproxyGateway;
let load: KeyedLoadProcess;
let r: NoticeReceiver;


const version = (name: string, number: number) => h.runtime.db.version.findFirstOrThrow({ where: { secret: { name }, number } });
const auditOf = (name: string, action: string) => h.runtime.db.auditEvent.findMany({ where: { chain: name, action }, orderBy: { seq: 'asc' } });
const notices = () =>
  r.accepted('/hooks/ops').map((d) => JSON.parse(d.body) as { type: string; data: Record<string, unknown> }).filter((n) => n.type === 'rekey.version.still-used');
const answered = (key: string, status: number) => load.answers(key).get(status) ?? 0;

beforeAll(async () => {
  r = await startNoticeReceiver(WHSEC);
  process.env.USAGE_RETIRE_WHSEC = WHSEC;
  backend = await startBackend();
  haproxy = await startHaproxy(backend.port, { usage: { throttledPer10s: 5 } });
  h = await startHarness({ label: 'usage-retire', routes: [adminApiRoutes] });
  const { probe: _probe, ...gateway } = haproxy.providerConfig;
  const edge = { type: 'haproxy', ...gateway, drift: { interval: '1h' }, usage: { interval: '1s' } };
  await h.apply(`
env: { allow: [USAGE_RETIRE_WHSEC] }
providers:
  vault: { type: local }
  edge: ${JSON.stringify(edge)}
notifications:
  destinations:
    ops: { type: webhook, url: "${r.base}/hooks/ops", insecure: true, secret: "\${env:USAGE_RETIRE_WHSEC}", events: [version.still-used], retry: { attempts: 5, backoff: 100ms } }
secrets:
  ${family}:
    clients: [alpha, beta]
    store: { provider: vault }
    issuer: { type: random, prefix: rk_ur_ }
    targets: [edge]
    grace: 12s
    retire: { whenUnusedFor: 3s, maxGrace: 24s }
`);
  for (const name of [alpha, beta]) expect((await h.rotate(name, 60_000)).status).toBe('succeeded');
}, 120_000);

afterAll(async () => {
  await load?.stop();
  await h?.stop();
  await haproxy?.stop();
  await backend?.close();
  await r?.close();
});

describe('usage-aware retirement through HAProxy', () => {
  it('retires an unused previous key early, reports one still used by its client, holds it to maxGrace', async () => {
    const old = { alpha: await h.currentValue(alpha), beta: await h.currentValue(beta) };
    // Sent from a child process: this one runs the worker, and starved for whenUnusedFor (3 s) it would send
    // nothing with alpha's old key, which would then be retired as unused.
    load = await keyedLoadProcess({ url: haproxy.url, header: haproxy.header, streams: [{ key: old.alpha, rate: 5 }, { key: old.beta, rate: 5 }] });
    // Both old keys are seen in use before the rotation (their last use is recorded).
    await until(async () => !!(await version(alpha, 1)).lastUsedAt && !!(await version(beta, 1)).lastUsedAt, 30_000, 'v1 of both clients used');

    for (const name of [alpha, beta]) expect((await h.rotate(name, 60_000)).status).toBe('succeeded');
    const fresh = { alpha: await h.currentValue(alpha), beta: await h.currentValue(beta) };
    // beta moves to its new key; alpha keeps sending the old one.
    load.set({ key: old.beta, rate: 0 });
    load.set({ key: fresh.beta, rate: 5 });

    // beta: unused for whenUnusedFor, retired long before its 12 s grace ends.
    await until(async () => ['retired', 'revoked'].includes((await version(beta, 1)).state), 30_000, "beta's unused previous key retired");
    const betaV2 = await version(beta, 2);
    const betaV1 = await version(beta, 1);
    expect(betaV1.retiredAt!.getTime() - betaV2.promotedAt!.getTime()).toBeLessThan(GRACE_MS - 2000);
    const [cut] = await auditOf(beta, 'version.grace-cut');
    expect(cut!.data).toMatchObject({ number: 1, reason: 'unused' });

    // alpha: still in use, reported with the client's name.
    const [status] = await secretStatus(h.runtime, alpha);
    expect(status!.versions.find((v) => v.number === 1)).toMatchObject({ state: 'previous', stillUsed: true });
    expect(formatStatus([status!])).toMatch(/v1 {2}previous .*STILL IN USE by client alpha \(last used/);
    const token = await tokenFor(h, 'reader', ['read']);
    const detail = await call(h, `/api/v1/secrets/${encodeURIComponent(alpha)}`, { token });
    expect(detail.status).toBe(200);
    const body = detail.json as { client: string; versions: Array<{ number: number; state: string; stillUsed: boolean | null; lastUsedAt: string | null }> };
    expect(body.client).toBe('alpha');
    expect(body.versions.find((v) => v.number === 1)).toMatchObject({ state: 'previous', stillUsed: true });
    expect(body.versions.find((v) => v.number === 1)!.lastUsedAt).toMatch(/^20/);

    // At the end of its grace it is held to maxGrace after its successor's promotion, and the notice names alpha.
    const alphaV2 = await version(alpha, 2);
    await until(async () => (await auditOf(alpha, 'version.grace-held')).length > 0, 60_000, "alpha's retirement held");
    const [held] = await auditOf(alpha, 'version.grace-held');
    expect(held!.data).toMatchObject({ number: 1, reason: 'in-use', graceEndsAt: new Date(alphaV2.promotedAt!.getTime() + MAX_GRACE_MS).toISOString() });
    await until(() => Promise.resolve(notices().some((n) => n.data.phase === 'held')), 30_000, 'the held notice delivered');
    expect(notices().find((n) => n.data.phase === 'held')!.data).toMatchObject({ secret: alpha, client: 'alpha', version: 1 });

    // Past the original grace, HAProxy still accepts alpha's old key.
    const graceEnd = alphaV2.promotedAt!.getTime() + GRACE_MS;
    await until(() => Promise.resolve(Date.now() > graceEnd + 2000), 30_000, 'past the original grace');
    const okAfterGrace = answered(old.alpha, 200);
    await until(() => Promise.resolve(answered(old.alpha, 200) > okAfterGrace + 5), 30_000, 'old alpha key still answered 200');
    expect((await version(alpha, 1)).state).toBe('previous');

    // Retired at maxGrace (still in use: the retired notice names alpha), then refused at the gateway.
    await until(async () => ['retired', 'revoked'].includes((await version(alpha, 1)).state), 60_000, "alpha's previous key retired at maxGrace");
    expect((await version(alpha, 1)).retiredAt!.getTime()).toBeGreaterThanOrEqual(alphaV2.promotedAt!.getTime() + MAX_GRACE_MS);
    await until(() => Promise.resolve(notices().some((n) => n.data.phase === 'retired')), 30_000, 'the retired notice delivered');
    expect(notices().find((n) => n.data.phase === 'retired')!.data).toMatchObject({ secret: alpha, client: 'alpha' });
    const refused = answered(old.alpha, 401);
    await until(() => Promise.resolve(answered(old.alpha, 401) > refused + 3), 30_000, 'old alpha key refused');
    // No notice ever named beta, and the keys in use only ever got 200.
    expect(notices().filter((n) => n.data.client === 'beta')).toEqual([]);
    await load.synced();
    expect(unexpectedAnswers(load.answers(fresh.beta))).toEqual({});
  }, 180_000);
});
