/**
 * Value delivery (issue 17) on a real server: GET /v1/secrets/{name} hands the current value to
 * a subject whose value grant names the secret, and nobody else (another subject 403, no or a
 * bad credential 401); an ETag makes polling cheap (304, nothing audited); the expiry is never
 * later than the next scheduled rotation; each hand-out is audited without the value; a leaked
 * current version is never handed out; each subject has its own rate limit, untouched by other
 * subjects and by failed authentications from its address. GET /v1/events tells a connected
 * client of a rotation within a second of the promotion, and of a revocation.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { attestationToken, currentVersion, storedValue } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';
import { runRekey } from '../support/processes.js';
import { laterSchedule } from '../support/schedules.js';
import { openStream, type StreamEvent } from '../support/sse.js';

let h: Harness;
// Due first 12 hours from now, inside the grant's 24-hour ttl: the expiry it bounds shows, and it never fires during the run.
const daily = laterSchedule({ hours: 12, every: 'day' });
beforeAll(async () => {
  h = await startHarness({ label: 'delivery-values', routes: [deliveryRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  app-attestation:
    store: { provider: vault }
    issuer: { type: hmac-key }
    grace: 1h
  payments-api-key:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_pay_ }
    grace: 1h
  daily-key:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_day_ }
    schedule: { cron: "${daily.cron}" }
  other-key:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_other_ }
  # No schedule: a scheduled rotation would add events of its own to the revoke test's stream.
  leaked-key:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_leak_ }
delivery:
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    payments:
      authenticator: app
      subjects: ["app:com.example.*"]
      value: { secret: payments-api-key, ttl: 5m }
    # A subject of its own, for the secret with a schedule.
    daily:
      authenticator: app
      subjects: ["app:daily"]
      value: { secret: daily-key, ttl: 24h }
    burst:
      authenticator: app
      subjects: ["app:burst-*"]
      value: { secret: other-key }
    watch:
      authenticator: app
      subjects: ["app:watch"]
      value: { secret: leaked-key }
  rateLimit: { max: 20, window: 10m }
`);
  for (const secret of ['app-attestation', 'payments-api-key', 'daily-key', 'other-key', 'leaked-key']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(() => h.stop());

const attestation = (sub = 'app:com.example.ios') => attestationToken(h, 'app-attestation', { sub });

async function get(secret: string, credential: string | undefined, headers: Record<string, string> = {}) {
  const response = await fetch(`${h.serving!.url}/v1/secrets/${secret}`, { headers: { ...(credential ? { authorization: `Bearer ${credential}` } : {}), ...headers } });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> | undefined };
}

const current = (secret: string) => currentVersion(h, secret);
const stored = (secret: string) => storedValue(h, secret);

it('hands the current value to the granted subject with its version, ETag, no-store and an expiry, and audits it without the value', async () => {
  const answer = await get('payments-api-key', await attestation());
  expect(answer.status).toBe(200);
  const version = await current('payments-api-key');
  const value = await stored('payments-api-key');
  expect(answer.body).toMatchObject({ secret: 'payments-api-key', version: version.number, value });
  expect(answer.headers.get('cache-control')).toBe('no-store');
  expect(answer.headers.get('etag')).toBe(`"${version.id}"`);
  const expiresAt = Date.parse(answer.body!.expiresAt as string);
  expect(expiresAt - Date.now()).toBeGreaterThan(4 * 60_000);
  expect(expiresAt - Date.now()).toBeLessThanOrEqual(5 * 60_000);

  const events = await h.runtime.db.auditEvent.findMany({ where: { action: 'delivery.value' } });
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({ actor: 'subject:app:com.example.ios', secret: 'payments-api-key', versionId: version.id, data: { grant: 'payments', authenticator: 'app', subject: 'app:com.example.ios', version: version.number } });
  expect(JSON.stringify(events, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)) + h.logs.join('\n')).not.toContain(value);
});

it('answers 304 to a poll that holds the current version, reading and auditing nothing', async () => {
  const credential = await attestation();
  const first = await get('payments-api-key', credential);
  const before = await h.runtime.db.auditEvent.count({ where: { action: 'delivery.value' } });
  const again = await get('payments-api-key', credential, { 'if-none-match': first.headers.get('etag')! });
  expect(again.status).toBe(304);
  expect(again.headers.get('etag')).toBe(first.headers.get('etag'));
  expect(again.headers.get('cache-control')).toBe('no-store');
  expect(await h.runtime.db.auditEvent.count({ where: { action: 'delivery.value' } })).toBe(before);
  expect((await get('payments-api-key', credential, { 'if-none-match': '"some-older-version"' })).status).toBe(200);
});

it('bounds the expiry by the next scheduled rotation', async () => {
  const answer = await get('daily-key', await attestation('app:daily'));
  expect(answer.status).toBe(200);
  expect(answer.body!.expiresAt).toBe(daily.next.toISOString());
});

it('refuses other subjects (403), missing and invalid credentials (401), and secrets the subject has no grant for', async () => {
  expect((await get('payments-api-key', await attestation('app:org.other'))).status).toBe(403);
  expect((await get('payments-api-key', await attestation('app:burst-1'))).status).toBe(403);
  expect((await get('other-key', await attestation())).status).toBe(403);
  expect((await get('no-such-secret', await attestation())).status).toBe(403);
  const missing = await get('payments-api-key', undefined);
  expect(missing.status).toBe(401);
  expect(missing.headers.get('www-authenticate')).toContain('Bearer');
  expect((await get('payments-api-key', 'not.a.jwt')).body).toEqual({ error: 'invalid_token', error_description: 'the credential is not valid' });
  expect((await get('no-such-secret', 'not.a.jwt')).status).toBe(401); // nothing learnt about which secrets exist
});

it('limits each subject on its own, and failed authentications from its address never touch it', async () => {
  const burst = await attestation('app:burst-2');
  const statuses: number[] = [];
  for (let i = 0; i < 22; i++) statuses.push((await get('other-key', burst)).status);
  expect(statuses.slice(0, 20)).toEqual(Array(20).fill(200));
  expect(statuses.slice(20)).toEqual([429, 429]);
  // Another subject, and this source after 35 failed authentications, still get through.
  for (let i = 0; i < 35; i++) expect((await get('payments-api-key', 'not.a.jwt')).status).toBe(401);
  expect((await get('payments-api-key', await attestation('app:com.example.android'))).status).toBe(200);
});

it('tells a connected client of a rotation within a second of the promotion, and of a revocation', async () => {
  const stream = await openStream(`${h.serving!.url}/v1/events`, await attestation());
  try {
    const ready = await stream.next('ready');
    const before = await current('payments-api-key');
    // Only what the subject's grants name (not other-key, granted to other subjects).
    expect(ready.secrets).toEqual([{ secret: 'payments-api-key', version: before.number }]);

    expect((await h.rotate('payments-api-key', 60_000)).status).toBe('succeeded');
    const rotated = await stream.next('rotated');
    const promoted = await current('payments-api-key');
    expect(rotated.data).toEqual({ secret: 'payments-api-key', version: promoted.number });
    const latency = rotated.at - promoted.promotedAt!.getTime();
    expect(latency).toBeLessThan(1000);

    await h.runtime.engine.revoke('payments-api-key', promoted.number);
    expect((await stream.next('revoked')).data).toEqual({ secret: 'payments-api-key', version: promoted.number });
    // A leaked current version is never handed out: 503 until its replacement is promoted, then the replacement.
    const during = await get('payments-api-key', await attestation());
    if (during.status === 200) expect(during.body!.version).not.toBe(promoted.number);
    else expect(during.status).toBe(503);
    const replaced = (await stream.next('rotated')).data as { secret: string; version: number };
    expect(replaced.secret).toBe('payments-api-key');
    expect(replaced.version).toBeGreaterThan(promoted.number);
    const after = await get('payments-api-key', await attestation());
    expect(after.body).toMatchObject({ version: replaced.version, value: await stored('payments-api-key') });
  } finally {
    stream.close();
  }
}, 120_000);

it('refuses a stream without a valid credential, and to a subject that may read nothing', async () => {
  expect((await fetch(`${h.serving!.url}/v1/events`)).status).toBe(401);
  expect((await fetch(`${h.serving!.url}/v1/events`, { headers: { authorization: 'Bearer not.a.jwt' } })).status).toBe(401);
  expect((await fetch(`${h.serving!.url}/v1/events`, { headers: { authorization: `Bearer ${await attestation('app:org.other')}` } })).status).toBe(403);
});

it('fans a change out across processes: `rekey revoke` in a process of its own reaches a stream of this server', async () => {
  // A subject of its own, granted only a secret no other test and no schedule rotates.
  const stream = await openStream(`${h.serving!.url}/v1/events`, await attestation('app:watch'));
  try {
    await stream.next('ready');
    const leaked = await current('leaked-key');
    const result = await runRekey(['revoke', 'leaked-key', '--version', String(leaked.number)], h.childEnv());
    expect(result.code).toBe(0);
    // The revocation is published by the CLI's process, its replacement's promotion by a worker:
    // two processes, so either may reach the stream first.
    const revoked = (e: StreamEvent): boolean => e.event === 'revoked';
    const replaced = (e: StreamEvent): boolean => e.event === 'rotated';
    const events = await stream.until((seen) => seen.some(revoked) && seen.some(replaced), 60_000);
    expect(events.filter(revoked).map((e) => e.data)).toEqual([{ secret: 'leaked-key', version: leaked.number }]);
    const replacement = events.filter(replaced).map((e) => e.data as { secret: string; version: number });
    expect(replacement).toEqual([{ secret: 'leaked-key', version: expect.any(Number) as number }]);
    expect(replacement[0]!.version).toBeGreaterThan(leaked.number);
  } finally {
    stream.close();
  }
}, 120_000);

it('gives changes an id, and a stream resumed with Last-Event-ID gets the changes it missed instead of ready', async () => {
  const credential = await attestation('app:com.example.tv');
  const first = await openStream(`${h.serving!.url}/v1/events`, credential);
  await first.next('ready');
  expect((await h.rotate('payments-api-key', 60_000)).status).toBe('succeeded');
  const seen = await first.next('rotated');
  expect(seen.id).toMatch(/^\d+-\d+$/);
  first.close();

  // Rotated while the client was away.
  expect((await h.rotate('payments-api-key', 60_000)).status).toBe('succeeded');
  const missed = (await current('payments-api-key')).number;
  const resumed = await openStream(`${h.serving!.url}/v1/events`, credential, { 'last-event-id': seen.id! });
  try {
    const replayed = await resumed.next('rotated');
    expect(replayed.data).toEqual({ secret: 'payments-api-key', version: missed });
    expect(resumed.names()).toEqual(['rotated']);
  } finally {
    resumed.close();
  }
  // An id the log no longer reaches back to (or never held): a fresh start with ready.
  const stale = await openStream(`${h.serving!.url}/v1/events`, credential, { 'last-event-id': '1-0' });
  try {
    expect((await stale.next('ready')).secrets).toContainEqual({ secret: 'payments-api-key', version: missed });
  } finally {
    stale.close();
  }
}, 120_000);
