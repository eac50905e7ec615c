/**
 * POST /events/pubsub end to end: rekey's server and workers (harness), the Google Secret Manager
 * fake as the store, the random issuer and the memory target. The SECRET_ROTATE message is the
 * one the fake publishes for a secret whose rotation schedule was set in Secret Manager; the push
 * carries an OIDC token signed with a key pair this test made, published from a JWKS server on
 * 127.0.0.1 and configured as `events.pubsub.jwksUrl`.
 */
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { pubsubPushRoutes, PUBSUB_PATH } from '../../src/events/pubsub-push.js';
import type { Admission } from '../../src/http/admission.js';
import type { RouteModule } from '../../src/http/server.js';
import { GCP_PROJECT, startCloudFakes, type CloudFakes } from '../events/cloud-fakes.js';
import { PUSH_SERVICE_ACCOUNT, pushEnvelope, pushSigner, startJwksServer, type PushSigner } from '../events/pubsub.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';
import { laterSchedule } from '../support/schedules.js';
import { CAP, slowRequest, UNPROVEN_SHARE } from '../support/slow-body.js';

const AUDIENCE = 'https://rekey.test/events/pubsub';
const TOPIC = `projects/${GCP_PROJECT}/topics/rekey-rotations`;
const id = randomUUID().slice(0, 8);
const gcpName = `rekey-evt-${id}`;
const scheduledName = `rekey-sched-${id}`;
const secret = `evt-${id}`;
const scheduled = `sched-${id}`;
// First due 12 hours from now: a firing during the run would give the scheduled secret the run its test says it has not.
const weekly = laterSchedule();

let h: Harness;
let fakes: CloudFakes;
let signer: PushSigner;
let jwks: Awaited<ReturnType<typeof startJwksServer>>;
let admission: Admission;
/** Hands the test the server's admission, to wait on its counts. */
const captureAdmission: RouteModule = (_app, _runtime, shared) => {
  admission = shared.admission;
};

const config = (events: boolean) => `
providers:
${fakes.providers}
  edge: { type: memory, journal: pubsub-${id} }
secrets:
  ${secret}:
    store: { provider: gcp, name: ${gcpName}, topic: ${TOPIC} }
    issuer: { type: random }
    targets: [edge]
    grace: 1h
    retry: { attempts: 2, backoff: 50ms }
  ${scheduled}:
    store: { provider: gcp, name: ${scheduledName}, topic: ${TOPIC} }
    issuer: { type: random }
    schedule: { cron: "${weekly.cron}", timezone: UTC }
${events ? `events:\n  pubsub: { audience: "${AUDIENCE}", serviceAccount: ${PUSH_SERVICE_ACCOUNT}, jwksUrl: "${jwks.url}" }` : ''}
`;

/** A rotation schedule set in Secret Manager (outside rekey), so the fake can publish SECRET_ROTATE. */
function scheduleInGoogle(name: string): void {
  const model = fakes.gcp.model;
  model.CreateSecret({ parent: `projects/${GCP_PROJECT}`, secret_id: name, secret: { replication: { automatic: {} }, topics: [{ name: TOPIC }] } });
  model.UpdateSecret({
    secret: { name: `projects/${GCP_PROJECT}/secrets/${name}`, rotation: { next_rotation_time: { seconds: String(Math.floor(Date.now() / 1000) + 3600) }, rotation_period: { seconds: '86400' } } },
    update_mask: { paths: ['rotation'] },
  });
}

async function push(body: unknown, token?: string): Promise<{ status: number; body: Record<string, unknown> | undefined; headers: Headers }> {
  const response = await fetch(`${h.serving!.url}${PUBSUB_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined, headers: response.headers };
}

/** A message that changes nothing whatever the config: for polling until a new config is seen. */
const harmless = () => pushEnvelope({ attributes: { eventType: 'SECRET_VERSION_ADD', secretId: `projects/${GCP_PROJECT}/secrets/${gcpName}` } });
const token = (claims: Partial<Parameters<PushSigner['token']>[0]> = {}) => signer.token({ audience: AUDIENCE, ...claims });
const runsOf = (name: string) => h.runtime.db.run.findMany({ where: { secret: { name }, kind: 'rotation' }, select: { id: true, trigger: true, idempotencyKey: true } });
const versionsOf = (name: string) => h.runtime.db.version.findMany({ where: { secret: { name } }, orderBy: { number: 'asc' }, select: { number: true, state: true } });

async function pushCounter(outcome: string): Promise<number> {
  const text = await (await fetch(`${h.serving!.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`rekey_pubsub_push_total{outcome="${outcome}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

beforeAll(async () => {
  fakes = await startCloudFakes();
  signer = await pushSigner();
  jwks = await startJwksServer(signer.jwks);
  h = await startHarness({ label: 'pubsub-push', routes: [pubsubPushRoutes, deliveryRoutes, captureAdmission] });
  scheduleInGoogle(gcpName);
  scheduleInGoogle(scheduledName);
  await h.apply(config(true));
});

afterAll(async () => {
  await h?.stop();
  await jwks?.close();
  await fakes?.close();
});

describe('Pub/Sub push: SECRET_ROTATE', () => {
  it('triggers exactly one rotation; the same message redelivered does not rotate again', async () => {
    const message = pushEnvelope({ ...fakes.gcp.model.rotationNotification(gcpName), messageId: `m-${id}-1` });
    // Pub/Sub can deliver a message twice at once (at-least-once, several push connections).
    const [first, second] = await Promise.all([push(message, await token()), push(message, await token())]);
    expect([first.status, second.status]).toEqual([200, 200]);
    // One creates the run; the other joins it (or, if the run already promoted, is stale).
    const [queued, other] = first.body!.outcome === 'queued' ? [first, second] : [second, first];
    expect(queued.body!.outcome).toBe('queued');
    expect(['joined', 'stale']).toContain(other.body!.outcome);
    const runId = (queued.body!.results as Array<{ runId: string }>)[0]!.runId;
    if (other.body!.outcome === 'joined') expect((other.body!.results as Array<{ runId: string }>)[0]!.runId).toBe(runId);

    expect((await h.waitForRun(runId)).status).toBe('succeeded');
    expect(await runsOf(secret)).toEqual([{ id: runId, trigger: 'event', idempotencyKey: `pubsub:m-${id}-1` }]);
    expect(await versionsOf(secret)).toEqual([{ number: 1, state: 'current' }]);
    expect(fakes.gcp.model.secrets.get(gcpName)!.aliases).toEqual({ current: 1 });

    // Redelivered after the rotation (no ack seen by Pub/Sub): older than the promotion, stale.
    const again = await push(message, await token());
    expect(again.status).toBe(200);
    expect(again.body!.outcome).toBe('stale');
    expect(await runsOf(secret)).toHaveLength(1);
    expect(await versionsOf(secret)).toEqual([{ number: 1, state: 'current' }]);
  });

  it('the next notification (a new message) rotates again', async () => {
    const message = pushEnvelope({ ...fakes.gcp.model.rotationNotification(gcpName), messageId: `m-${id}-2` });
    const response = await push(message, await token());
    expect(response.body!.outcome).toBe('queued');
    expect((await h.waitForRun((response.body!.results as Array<{ runId: string }>)[0]!.runId)).status).toBe('succeeded');
    expect(await versionsOf(secret)).toEqual([
      { number: 1, state: 'previous' },
      { number: 2, state: 'current' },
    ]);
    expect(fakes.gcp.model.secrets.get(gcpName)!.aliases).toEqual({ current: 2, previous: 1 });
  });

  it('a secret with a rekey schedule is acknowledged without a second rotator', async () => {
    const response = await push(pushEnvelope(fakes.gcp.model.rotationNotification(scheduledName)), await token());
    expect(response.status).toBe(200);
    expect(response.body!.outcome).toBe('scheduled');
    expect(await runsOf(scheduled)).toEqual([]);
  });
});

describe('Pub/Sub push: acknowledged and ignored', () => {
  it("other event types (rekey's own writes publish them) never start a rotation", async () => {
    const before = await runsOf(secret);
    for (const eventType of ['SECRET_VERSION_ADD', 'SECRET_UPDATE', 'SECRET_VERSION_DISABLE']) {
      const attributes = { eventType, dataFormat: 'JSON_API_V1', secretId: `projects/${fakes.gcp.model.projectNumber}/secrets/${gcpName}`, timestamp: new Date().toISOString() };
      const response = await push(pushEnvelope({ attributes }), await token());
      expect(response.status).toBe(204);
    }
    expect(await runsOf(secret)).toEqual(before);
  });

  it('a secret rekey does not manage: 204 (no retry storm) and a log line', async () => {
    const secretId = `projects/${fakes.gcp.model.projectNumber}/secrets/not-managed-${id}`;
    const attributes = { eventType: 'SECRET_ROTATE', dataFormat: 'JSON_API_V1', secretId, timestamp: new Date().toISOString() };
    expect((await push(pushEnvelope({ attributes }), await token())).status).toBe(204);
    expect(h.logs.some((line) => line.includes(secretId) && line.includes('does not manage'))).toBe(true);
  });

  it('a body that is not a push envelope: 400', async () => {
    expect((await push({ hello: 'world' }, await token())).status).toBe(400);
  });
});

describe('Pub/Sub push: another secret that cannot be opened', () => {
  it("does not stop the notifications of the secrets that can (one provider's missing credential)", async () => {
    // Another secret, on a provider whose credential is not in this process's environment.
    const unset = `REKEYTEST_UNSET_${id.toUpperCase()}`;
    await h.apply(`${config(true)}
env: { allow: ["REKEYTEST_*"] }
`.replace(`secrets:\n`, `  broken: { type: local, key: "\${env:${unset}}" }\nsecrets:\n  broken-${id}:\n    store: { provider: broken }\n    issuer: { type: random }\n`));
    await expect.poll(async () => (await h.runtime.resolver.config()).secrets[`broken-${id}`] !== undefined, { timeout: 5000 }).toBe(true);
    const response = await push(pushEnvelope({ ...fakes.gcp.model.rotationNotification(gcpName), messageId: `m-${id}-broken` }), await token());
    expect(response.status).toBe(200);
    expect(response.body!.outcome).toBe('queued');
    expect((await h.waitForRun((response.body!.results as Array<{ runId: string }>)[0]!.runId)).status).toBe('succeeded');
    // A secret nothing matched may be the one that cannot be opened: not acknowledged, Pub/Sub retries.
    const attributes = { eventType: 'SECRET_ROTATE', dataFormat: 'JSON_API_V1', secretId: `projects/${fakes.gcp.model.projectNumber}/secrets/not-managed-${id}`, timestamp: new Date().toISOString() };
    expect((await push(pushEnvelope({ attributes }), await token())).status).toBe(503);
    // Settled before the next test: the version two rotations back is retired and revoked.
    await expect.poll(async () => (await versionsOf(secret)).map((v) => v.state), { timeout: 10_000 }).toEqual(['revoked', 'previous', 'current']);
    await h.apply(config(true));
  });
});

describe('Pub/Sub push: admission', () => {
  /** A push from `from` (127.0.0.0/8 is all loopback): its status. */
  const pushFrom = (from: string, body: unknown, bearer: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request(new URL(PUBSUB_PATH, h.serving!.url), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` }, localAddress: from, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });

  // A push is authenticated from its headers, so slow bodies hold no slot here; they do on POST
  // /v1/token, whose admission is the same (one cap per process).
  it('a push source whose push authenticated before is answered while unauthenticated addresses hold their share with slow token bodies', async () => {
    const pusher = '127.0.0.41';
    const before = await pushFrom(pusher, harmless(), await token()); // proves its address
    expect(before).toBe(204);
    const answers: number[] = [];
    const open = (from: string) => slowRequest(h.serving!.url, from, { path: '/v1/token', contentType: 'application/x-www-form-urlencoded', start: 'grant_type=' }, answers);
    const held = await Promise.all(['127.0.0.3', '127.0.0.4'].flatMap((from) => Array.from({ length: CAP }, () => open(from))));
    try {
      await until(() => Promise.resolve(admission.counts().unproven === UNPROVEN_SHARE && answers.length === held.length - UNPROVEN_SHARE), 10_000, 'the flood admitted up to its share');
      expect(await pushFrom(pusher, harmless(), await token())).toBe(before);
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});

describe('Pub/Sub push: authentication', () => {
  it('a bad, expired or misdirected token gets 401, changes nothing and leaves no trace but a counter', async () => {
    const runs = await runsOf(secret);
    const versions = await versionsOf(secret);
    const counted = await pushCounter('unauthenticated');
    const logged = h.logs.length;
    const other = await pushSigner(signer.kid);
    const now = Math.floor(Date.now() / 1000);
    const forged: Array<string | undefined> = [
      undefined,
      'not-a-jwt',
      await token({ audience: 'https://elsewhere.example.com/push' }),
      await token({ iat: now - 7200, exp: now - 3600 }),
      await token({ issuer: 'https://evil.example.com' }),
      await token({ email: 'intruder@evil-project.iam.gserviceaccount.com' }),
      await other.token({ audience: AUDIENCE }),
    ];
    for (const [i, bearer] of forged.entries()) {
      const message = pushEnvelope({ ...fakes.gcp.model.rotationNotification(gcpName), messageId: `forged-${id}-${i}` });
      const response = await push(message, bearer);
      expect(response.status, `forged token #${i}`).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('invalid_token');
    }
    // /metrics renders at most once a second: the counter shows up on a later rendering.
    await expect.poll(() => pushCounter('unauthenticated'), { timeout: 10_000 }).toBe(counted + forged.length);
    expect(await runsOf(secret)).toEqual(runs);
    expect(await versionsOf(secret)).toEqual(versions);
    expect(h.logs.slice(logged).filter((line) => line.includes('forged-') || line.includes('pubsub'))).toEqual([]);
    expect(jwks.fetches()).toBe(1); // keys fetched once, cached ever since
  });

  it('keys that cannot be fetched: 503, so Pub/Sub redelivers later (and one throttled warning)', async () => {
    const down = await startJwksServer(signer.jwks);
    await down.close();
    await h.apply(config(true).replace(jwks.url, down.url));
    await expect
      .poll(async () => (await push(harmless(), await token())).status, { timeout: 5000 })
      .toBe(503);
    expect(h.logs.filter((line) => line.includes('cannot get the token signing keys'))).toHaveLength(1);
  });

  it('without events.pubsub in the applied config the endpoint answers 404', async () => {
    await h.apply(config(false));
    await expect
      .poll(async () => (await push(harmless(), await token())).status, { timeout: 5000 })
      .toBe(404);
  });
});
