// Leaks at awkward moments, with a recording memory store and issuer in front of a real
// HAProxy: during a rotation, of the previous version in its grace, of a version already
// revoked, the same report many times at once, the same token from two sources, and a
// token that is not ours. Each makes at most one revocation; no log line holds a token.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send } from '../../support/gateways/index.js';
import { journal, type Journal } from '../../support/memory-provider.js';
import { leaksYaml, post, startLeakEnv, storedValue, until, webhookHeaders, type LeakEnv } from './support.js';

let e: LeakEnv;
const reported = new Set<string>();

beforeAll(async () => (e = await startLeakEnv('scenarios')));
afterAll(async () => {
  // Whatever happened above, no captured log line may hold a token any test reported.
  const leaking = e ? e.h.logs.filter((line) => [...reported].some((token) => line.includes(token))) : [];
  await e?.stop();
  expect(leaking).toEqual([]);
});

/** A fresh secret: memory store and issuer (journal `j`), HAProxy target, one current version. */
async function secretWithCurrent(): Promise<{ secret: string; j: Journal }> {
  const secret = `sc-${randomUUID().slice(0, 8)}`;
  const name = `leaks-${secret}`;
  await e.h.apply(`
providers:
  mem: { type: memory, journal: ${name} }
  edge: { type: haproxy, runtimeApi: "${e.gateway.runtimeApi.unix}", map: ${e.gateway.map}, probe: { url: "${e.gateway.url}", header: ${e.gateway.header} } }
secrets:
  ${secret}:
    store: { provider: mem }
    issuer: { provider: mem }
    targets: [edge]
    grace: 1h
    retry: { attempts: 3, backoff: 100ms }
    timeout: 5s
${leaksYaml(e)}`);
  expect((await e.h.rotate(secret)).status).toBe('succeeded');
  return { secret, j: journal(name) };
}

const status = async (key: string) => (await send(e.gateway.url, e.gateway.header, key)).status;

async function viaWebhook(token: string, id = `msg_${randomUUID()}`): Promise<{ outcome: string; duplicate: boolean }> {
  reported.add(token);
  const body = JSON.stringify({ token });
  const answer = await post(e.h.serving!.url, '/webhooks/leaks', body, webhookHeaders(e.secrets.webhook, body, id));
  expect(answer.status).toBe(200);
  return JSON.parse(answer.body) as { outcome: string; duplicate: boolean };
}

async function viaGithub(token: string): Promise<string> {
  reported.add(token);
  const body = JSON.stringify([{ token, type: 'rekey_api_key', url: '', source: 'content' }]);
  const answer = await post(e.h.serving!.url, '/webhooks/github-secret-scanning', body, e.github.headers(body));
  expect(answer.status).toBe(200);
  return (JSON.parse(answer.body) as Array<{ label: string }>)[0]!.label;
}

async function versions(secret: string) {
  return e.h.runtime.db.version.findMany({ where: { secret: { name: secret } }, orderBy: { number: 'asc' }, select: { number: true, state: true } });
}

async function runs(secret: string, kind: 'rotation' | 'revocation') {
  return e.h.runtime.db.run.findMany({ where: { kind, secret: { name: secret } }, select: { trigger: true, status: true, graceMs: true } });
}

describe('leaks at awkward moments', () => {
  it('during a rotation in progress: the leak joins that rotation (zero grace), then the leaked key is blocked', async () => {
    const { secret, j } = await secretWithCurrent();
    const v1 = (await storedValue(e.h, secret)).reveal();
    j.delayMs = 300; // every store and issuer call takes a while: the rotation is caught mid-way
    const manual = await e.h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
    if (manual.status === 'stale') throw new Error('unexpected');
    await until(async () => (await versions(secret)).length === 2);
    expect(await viaWebhook(v1)).toEqual({ outcome: 'rotating', duplicate: false });
    const run = await e.h.waitForRun(manual.run.id);
    expect(run).toMatchObject({ status: 'succeeded', graceMs: 0 });
    // The grace change is audited on the secret's chain, in the run's name.
    const grace = await e.h.runtime.db.auditEvent.findMany({ where: { runId: manual.run.id, action: 'run.grace' }, select: { chain: true, data: true } });
    expect(grace).toEqual([{ chain: secret, data: { graceMs: 0 } }]);
    j.delayMs = 0;
    await until(async () => (await status(v1)) === 401);
    // Blocked at the gateway first; revoked at the issuer and destroyed in the store right after.
    await until(async () => (await versions(secret))[0]!.state === 'revoked');
    expect(await versions(secret)).toEqual([
      { number: 1, state: 'revoked' },
      { number: 2, state: 'current' },
    ]);
    expect(await status((await storedValue(e.h, secret)).reveal())).toBe(200);
    // One rotation (the manual one, joined), one revocation.
    expect((await runs(secret, 'rotation')).length).toBe(2);
    await until(async () => {
      const revocations = await runs(secret, 'revocation');
      return revocations.length === 1 && revocations[0]!.status !== 'running';
    });
    expect(await runs(secret, 'revocation')).toEqual([{ trigger: 'leak', status: 'succeeded', graceMs: null }]);
  });

  it('rotate-then-revoke: the promotion of the replacement blocks the leaked key itself, before its revocation begins', async () => {
    const { secret } = await secretWithCurrent();
    const v1 = await e.h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: secret }, state: 'current' } });
    expect(await viaWebhook((await storedValue(e.h, secret)).reveal())).toEqual({ outcome: 'rotating', duplicate: false });
    const finished = async () => (await e.h.runtime.db.run.findMany({ where: { kind: 'revocation', status: { not: 'running' }, secret: { name: secret } } }))[0];
    await until(async () => !!(await finished()));
    const revocation = (await finished())!;
    const rotation = await e.h.runtime.db.run.findFirstOrThrow({ where: { kind: 'rotation', trigger: 'leak', secret: { name: secret } } });
    // Retired at the gateway (and recorded) by the worker that promoted v2, in its run. The
    // revocation usually finds it done; one that reconcile (every second here) queued as soon as
    // the promotion committed may retire it beside the block and record its own (fresh-ci, load 5).
    const retired = await e.h.runtime.db.auditEvent.findMany({ where: { versionId: v1.id, action: 'delivery.retired' }, select: { runId: true } });
    expect(retired.map((r) => r.runId)).toContain(rotation.id);
    expect(retired.map((r) => r.runId).every((id) => id === rotation.id || id === revocation.id)).toBe(true);
    const report = await e.h.runtime.db.leakReport.findFirstOrThrow({ where: { versionId: v1.id } });
    expect(report.blockedAt).not.toBeNull();
    expect(revocation.status).toBe('succeeded');
  });

  it("a leak's rotation asked for once the leaked version was replaced makes no run: no zero-grace rotation of a key that never leaked", async () => {
    // What reconcile does when a rotation promotes between its read of the leaked current version and its request (fresh-ci saw a v3 once).
    const { secret } = await secretWithCurrent();
    const current = () => e.h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: secret }, state: 'current' } });
    const v1 = await current();
    expect((await e.h.rotate(secret)).status).toBe('succeeded');
    const request = (id: string) => e.h.runtime.engine.requestRotation({ secret, trigger: 'leak', idempotencyKey: `leak:${id}`, urgent: true, replacing: id });
    expect(await request(v1.id)).toEqual({ status: 'stale' });
    expect(await runs(secret, 'rotation')).toHaveLength(2);
    // The same request for the version that is current does rotate it.
    const made = await request((await current()).id);
    expect(made.status).toBe('queued');
    expect(await e.h.waitForRun((made as { run: { id: string } }).run.id)).toMatchObject({ status: 'succeeded', graceMs: 0 });
  });

  it('of the previous version during its grace: blocked at once, current untouched, no rotation', async () => {
    const { secret } = await secretWithCurrent();
    const v1 = (await storedValue(e.h, secret)).reveal();
    expect((await e.h.rotate(secret)).status).toBe('succeeded');
    const v2 = (await storedValue(e.h, secret)).reveal();
    expect([await status(v1), await status(v2)]).toEqual([200, 200]); // the overlap
    expect(await viaWebhook(v1)).toEqual({ outcome: 'revoking', duplicate: false });
    await until(async () => (await status(v1)) === 401);
    expect(await status(v2)).toBe(200);
    await until(async () => (await versions(secret))[0]!.state === 'revoked');
    expect(await versions(secret)).toEqual([
      { number: 1, state: 'revoked' },
      { number: 2, state: 'current' },
    ]);
    expect((await runs(secret, 'rotation')).length).toBe(2);
  });

  it('of a version already revoked: answered as ours (true_positive), nothing done again', async () => {
    const { secret } = await secretWithCurrent();
    const v1 = (await storedValue(e.h, secret)).reveal();
    expect(await viaWebhook(v1)).toMatchObject({ outcome: 'rotating' });
    await until(async () => (await versions(secret))[0]!.state === 'revoked');
    const before = { rotations: (await runs(secret, 'rotation')).length, revocations: (await runs(secret, 'revocation')).length };
    expect(await viaGithub(v1)).toBe('true_positive');
    expect(await viaWebhook(v1)).toEqual({ outcome: 'already-revoked', duplicate: false });
    expect({ rotations: (await runs(secret, 'rotation')).length, revocations: (await runs(secret, 'revocation')).length }).toEqual(before);
  });

  it('the same delivery 20 times at once: one report, one emergency rotation, one revocation', async () => {
    const { secret } = await secretWithCurrent();
    const v1 = (await storedValue(e.h, secret)).reveal();
    const id = `msg_${randomUUID()}`;
    const answers = await Promise.all(Array.from({ length: 20 }, () => viaWebhook(v1, id)));
    expect(answers.filter((a) => !a.duplicate)).toHaveLength(1);
    expect(new Set(answers.map((a) => a.outcome))).toEqual(new Set(['rotating']));
    await until(async () => (await status(v1)) === 401);
    await until(async () => {
      const revocations = await runs(secret, 'revocation');
      return revocations.length > 0 && revocations.every((r) => r.status === 'succeeded');
    });
    expect(await e.h.runtime.db.leakReport.count({ where: { deliveryId: id } })).toBe(1);
    expect((await runs(secret, 'rotation')).filter((r) => r.trigger === 'leak')).toHaveLength(1);
    expect(await runs(secret, 'revocation')).toHaveLength(1);
  });

  it('the same token from two sources at once: two reports, one revocation', async () => {
    const { secret } = await secretWithCurrent();
    const v1 = (await storedValue(e.h, secret)).reveal();
    const [label, answer] = await Promise.all([viaGithub(v1), viaWebhook(v1)]);
    expect(label).toBe('true_positive');
    expect(answer.duplicate).toBe(false);
    await until(async () => (await status(v1)) === 401);
    await until(async () => (await versions(secret))[0]!.state === 'revoked');
    const fingerprint = e.h.runtime.engine.deps.fingerprint(v1);
    expect((await e.h.runtime.db.leakReport.findMany({ where: { fingerprint }, select: { source: true } })).map((r) => r.source).sort()).toEqual(['github', 'webhook']);
    expect((await runs(secret, 'rotation')).filter((r) => r.trigger === 'leak')).toHaveLength(1);
    expect(await runs(secret, 'revocation')).toHaveLength(1);
  });

  it('an unknown token: recorded by fingerprint only, nothing revoked', async () => {
    const { secret } = await secretWithCurrent();
    const current = (await storedValue(e.h, secret)).reveal();
    const stranger = `mem_${randomUUID().replaceAll('-', '')}`;
    expect(await viaWebhook(stranger)).toEqual({ outcome: 'unknown', duplicate: false });
    const row = await e.h.runtime.db.leakReport.findFirstOrThrow({ where: { fingerprint: e.h.runtime.engine.deps.fingerprint(stranger) } });
    expect(row).toMatchObject({ outcome: 'unknown', versionId: null, secretId: null, source: 'webhook' });
    expect(JSON.stringify(row)).not.toContain(stranger);
    expect(await versions(secret)).toEqual([{ number: 1, state: 'current' }]);
    expect(await status(current)).toBe(200);
    expect(await runs(secret, 'revocation')).toEqual([]);
  });
});
