// End to end, per receiver: a key accepted through a real HAProxy, a signed report of it,
// then the key rejected at HAProxy and a fresh current key accepted; answers exact.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, findToken } from '../../../src/api/tokens.js';
import { hmslHash } from '../../../src/leaks/hmsl.js';
import { send } from '../../support/gateways/index.js';
import {
  ENV_ALLOW_YAML,
  gatewaySecretYaml,
  gitguardianHeaders,
  leaksYaml,
  post,
  providersYaml,
  sha256Hex,
  startLeakEnv,
  storedValue,
  until,
  webhookHeaders,
  type Answer,
  type LeakEnv,
} from './support.js';

let e: LeakEnv;
const names = { github: `gh-${randomUUID().slice(0, 8)}`, gitguardian: `gg-${randomUUID().slice(0, 8)}`, webhook: `wh-${randomUUID().slice(0, 8)}`, fp: `fp-${randomUUID().slice(0, 8)}` };

beforeAll(async () => {
  e = await startLeakEnv('receivers');
  await e.h.apply(`${providersYaml(e)}
secrets:${Object.values(names)
    .map((n) => gatewaySecretYaml(n))
    .join('')}
${leaksYaml(e)}`);
  for (const name of Object.values(names)) expect((await e.h.rotate(name)).status).toBe('succeeded');
});
afterAll(() => e?.stop());

const status = async (key: string) => (await send(e.gateway.url, e.gateway.header, key)).status;

/** The whole story for one secret: accepted, reported via `report`, rejected, the fresh key accepted. */
async function leakAndRecover(secret: string, report: (token: string) => Promise<Answer>): Promise<Answer> {
  const leaked = (await storedValue(e.h, secret)).reveal();
  expect(await status(leaked)).toBe(200);
  const answer = await report(leaked);
  await until(async () => (await status(leaked)) === 401);
  const fresh = (await storedValue(e.h, secret)).reveal();
  expect(fresh).not.toBe(leaked);
  expect(await status(fresh)).toBe(200);
  expect((await send(e.gateway.url, e.gateway.header, fresh)).body).toBe(`consumer=${secret}`);
  return answer;
}

describe('leak receivers, end to end through HAProxy', () => {
  it('GitHub secret scanning: a signed partner alert revokes the key and is answered in the feedback format', async () => {
    const unknown = `rk_test_${randomUUID().replaceAll('-', '')}`;
    let leaked = '';
    const answer = await leakAndRecover(names.github, (token) => {
      leaked = token;
      const body = JSON.stringify([
        { token, type: 'rekey_api_key', url: 'https://github.com/octo/repo/blob/abc/config.js', source: 'content' },
        { token: unknown, type: 'rekey_api_key', url: '', source: 'commit' },
      ]);
      return post(e.h.serving!.url, '/webhooks/github-secret-scanning', body, e.github.headers(body));
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual([
      { token_hash: sha256Hex(leaked), token_type: 'rekey_api_key', label: 'true_positive' },
      { token_hash: sha256Hex(unknown), token_type: 'rekey_api_key', label: 'false_positive' },
    ]);
    // The unknown token is recorded by fingerprint only, and nothing else happened because of it.
    const reports = await e.h.runtime.db.leakReport.findMany({ where: { source: 'github' }, orderBy: { outcome: 'asc' } });
    expect(reports.map((r) => r.outcome).sort()).toEqual(['rotating', 'unknown']);
    expect(reports.find((r) => r.outcome === 'unknown')).toMatchObject({ versionId: null, secretId: null });
    expect(reports.find((r) => r.outcome === 'unknown')!.fingerprint).toMatch(/^fp_/);
  });

  it('GitGuardian: an incident whose hmsl_hash is our key revokes it; a resolved event is acknowledged and ignored', async () => {
    const answer = await leakAndRecover(names.gitguardian, async (token) => {
      const body = JSON.stringify(incident('incident_triggered', 4242, await hmslHash(token)));
      return post(e.h.serving!.url, '/webhooks/gitguardian', body, gitguardianHeaders(e.secrets.gitguardian, body));
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ outcome: 'rotating', duplicate: false });
    const resolved = JSON.stringify(incident('incident_resolved', 4242, 'a'.repeat(64)));
    const ignored = await post(e.h.serving!.url, '/webhooks/gitguardian', resolved, gitguardianHeaders(e.secrets.gitguardian, resolved));
    expect(ignored).toEqual({ status: 200, body: JSON.stringify({ status: 'ignored', reason: 'not an exposure event' }) });
    const report = await e.h.runtime.db.leakReport.findFirstOrThrow({ where: { source: 'gitguardian' } });
    expect(report).toMatchObject({ deliveryId: 'incident:4242', outcome: 'rotating' });
  });

  it('Standard Webhooks: a signed report carrying the token revokes it', async () => {
    const id = `msg_${randomUUID()}`;
    const answer = await leakAndRecover(names.webhook, (token) => {
      const body = JSON.stringify({ token });
      return post(e.h.serving!.url, '/webhooks/leaks', body, webhookHeaders(e.secrets.webhook, body, id));
    });
    expect(answer).toEqual({ status: 200, body: JSON.stringify({ outcome: 'rotating', duplicate: false }) });
    expect(await e.h.runtime.db.leakReport.findFirstOrThrow({ where: { source: 'webhook', deliveryId: id } })).toMatchObject({ outcome: 'rotating' });
  });

  it('Standard Webhooks: a report carrying only rekey’s fingerprint revokes the key too', async () => {
    const answer = await leakAndRecover(names.fp, (token) => {
      const body = JSON.stringify({ fingerprint: e.h.runtime.engine.deps.fingerprint(token) });
      return post(e.h.serving!.url, '/webhooks/leaks', body, webhookHeaders(e.secrets.webhook, body));
    });
    expect(JSON.parse(answer.body)).toEqual({ outcome: 'rotating', duplicate: false });
  });

  it('audits every step with the source and delivery id, and measures leak-to-blocked', async () => {
    // blockedAt is stamped right after the last target retired the key (HAProxy may refuse it a moment earlier).
    await until(async () => (await e.h.runtime.db.leakReport.count({ where: { outcome: 'rotating', blockedAt: null } })) === 0, 10_000);
    const report = await e.h.runtime.db.leakReport.findFirstOrThrow({ where: { source: 'github', outcome: 'rotating' } });
    expect(report.blockedAt!.getTime()).toBeGreaterThanOrEqual(report.receivedAt.getTime());
    const actor = `leak/github/${report.deliveryId}`;
    const events = await e.h.runtime.db.auditEvent.findMany({ where: { actor }, orderBy: { seq: 'asc' } });
    // What the report itself changed carries its actor: the version marked leaked, the emergency rotation started.
    expect(events.map((a) => a.action)).toEqual(expect.arrayContaining(['version.leaked', 'run.started', 'leak.reported']));
    // The compromised stamp commits with the emergency rotation's run: one transaction, one now() (microseconds).
    const [same] = await e.h.runtime.db.$queryRaw<Array<{ same: boolean }>>`
      SELECT r.started_at = v.compromised_at AS same FROM runs r JOIN versions v ON v.id = ${report.versionId}::uuid
      WHERE r.idempotency_key = ${`leak:${report.versionId}`}`;
    expect(same).toEqual({ same: true });
    // One delivery, two tokens: one leak.reported each; the known one names the version.
    const reported = events.find((a) => a.action === 'leak.reported' && (a.data as { outcome?: string }).outcome === 'rotating')!;
    expect(reported.data).toMatchObject({ source: 'github', deliveryId: report.deliveryId, outcome: 'rotating' });
    expect(reported.versionId).toBe(report.versionId);
    // One observation per leak blocked (four tests above).
    await until(async () => /rekey_leak_to_blocked_seconds_count [4-9]/.test(await e.h.runtime.metrics.registry.getSingleMetricAsString('rekey_leak_to_blocked_seconds')), 5000);
    const reports = await e.h.runtime.metrics.registry.getSingleMetricAsString('rekey_leak_reports_total');
    expect(reports).toContain('rekey_leak_reports_total{receiver="github",outcome="unknown"} 1');
  });

  it('GitGuardian: an incident for a key of a secret removed from rekey.yaml (its keys still live) blocks that key', async () => {
    const gone = `gg-gone-${randomUUID().slice(0, 8)}`;
    const yaml = (extra: string[]) => `${providersYaml(e)}
secrets:${[...Object.values(names), ...extra].map((n) => gatewaySecretYaml(n)).join('')}
${leaksYaml(e)}`;
    await e.h.apply(yaml([gone]));
    expect((await e.h.rotate(gone)).status).toBe('succeeded');
    const leaked = (await storedValue(e.h, gone)).reveal();
    // Removed from the config: its key stays live at HAProxy (DESIGN.md: it keeps its bindings, so leaks still reach it).
    await e.h.apply(yaml([]));
    await until(async () => !(gone in (await e.h.runtime.resolver.config()).secrets), 5000, 'the removal applied');
    expect(await status(leaked)).toBe(200);

    const body = JSON.stringify(incident('incident_triggered', 4343, await hmslHash(leaked)));
    const answer = await post(e.h.serving!.url, '/webhooks/gitguardian', body, gitguardianHeaders(e.secrets.gitguardian, body));
    expect(answer).toEqual({ status: 200, body: JSON.stringify({ outcome: 'blocking', duplicate: false }) });
    await until(async () => (await status(leaked)) === 401, 10_000, 'HAProxy refusing the leaked key');
  });

  it('Standard Webhooks: a reported admin API token (rkadm_...) is revoked, as from any receiver', async () => {
    const { token } = await createToken(e.h.runtime.db, e.h.runtime.audit, { name: `wh-leaked-${randomUUID().slice(0, 8)}`, scopes: ['admin'], actor: 'test' });
    expect(await findToken(e.h.runtime.db, token)).toBeDefined();
    const body = JSON.stringify({ token });
    const answer = await post(e.h.serving!.url, '/webhooks/leaks', body, webhookHeaders(e.secrets.webhook, body));
    expect(answer).toEqual({ status: 200, body: JSON.stringify({ outcome: 'unknown', duplicate: false }) });
    expect(await findToken(e.h.runtime.db, token)).toBeUndefined();
  });

  it('answers 404 for a receiver whose section is absent', async () => {
    await e.h.apply(`${providersYaml(e)}
secrets:${Object.values(names)
      .map((n) => gatewaySecretYaml(n))
      .join('')}
leaks:
  webhook: { secret: "\${env:${e.env.webhook}}" }
${ENV_ALLOW_YAML}`);
    await until(async () => (await post(e.h.serving!.url, '/webhooks/gitguardian', '{}', { 'content-type': 'application/json' })).status === 404, 5000);
    const body = JSON.stringify({ token: 'x' });
    expect((await post(e.h.serving!.url, '/webhooks/github-secret-scanning', body, e.github.headers(body))).status).toBe(404);
    expect((await post(e.h.serving!.url, '/webhooks/aws-health', body, { 'content-type': 'application/json' })).status).toBe(404);
  });
});

function incident(action: string, id: number, hmsl: string) {
  return {
    source: 'GitGuardian',
    timestamp: new Date().toISOString(),
    action,
    message: 'A new incident has been detected.',
    target_user: 'GitGuardian',
    incident: {
      id,
      date: new Date().toISOString(),
      detector: { name: 'rekey_api_key', display_name: 'rekey API key', nature: 'specific', family: 'Api' },
      secret_hash: 'opaque-to-us',
      hmsl_hash: hmsl,
      secret_revoked: false,
      status: 'triggered',
      gitguardian_url: 'https://dashboard.gitguardian.com/workspace/1/incidents/4242',
    },
  };
}
