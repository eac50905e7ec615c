/**
 * One authenticator that cannot verify does not lock out the callers of another: an `oidc`
 * authenticator whose issuer does not answer (its discovery document unreachable) is named by
 * the first grant for an audience (first in the file and in PostgreSQL's jsonb key order, which
 * puts shorter names first), an `attestation-jwt` one by the second. An attested app still
 * gets its token; a credential nobody accepts that claims the unreachable issuer gets 503, not
 * the refusal, since that issuer might have vouched for it; one that does not claim it is refused. Before, the first authenticator's failure answered 503 to
 * everyone: an outage of a CI system's issuer stopped every mobile app's token exchange.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { startAgent, type AgentLogEvent } from '../../src/agent/agent.js';
import { createClient, type ClientLogEvent } from '../../src/client/index.js';
import { UNAVAILABLE_RETRY_AFTER_S } from '../../src/delivery/context.js';
import { deliveryRoutes, GRANT_TYPE, JWT_TOKEN_TYPE } from '../../src/delivery/routes.js';
import type { Admission } from '../../src/http/admission.js';
import { agentOptions } from '../support/agent.js';
import { CLOSED_PORT } from '../support/closed-port.js';
import { attestationToken, exchange, REFUSED, DELIVERY_KEYS } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';

let h: Harness;
/** The OIDC issuer nothing answers for. */
let ciIssuer: string;
/** The server's admission, whose failed() counts a source's failed authentications. */
let admission: Admission | undefined;

beforeAll(async () => {
  h = await startHarness({ label: 'delivery-auth-down', routes: [deliveryRoutes, (_app, _runtime, shared) => void (admission = shared.admission)] });
  ciIssuer = `http://127.0.0.1:${CLOSED_PORT}`;
  await h.apply(`
${DELIVERY_KEYS}
  ci-value: { store: { provider: vault }, issuer: { type: random } }
delivery:
  issuer: https://rekey.test
  authenticators:
    ci: { type: oidc, issuer: "${ciIssuer}", audience: rekey, insecure: true }
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    ci: { authenticator: ci, subjects: ["*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 5m } }
    mobile: { authenticator: app, subjects: ["app:*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 5m } }
    ci-values: { authenticator: ci, subjects: ["*"], value: { secret: ci-value, ttl: 5m } }
    app-values: { authenticator: app, subjects: ["app:*"], value: { secret: ci-value, ttl: 5m } }
`);
  for (const secret of ['app-attestation', 'api-signing']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);

afterAll(async () => {
  await h?.stop();
});

const failures = () => h.logs.filter((line) => line.includes('authenticator failed') && line.includes('"authenticator":"ci"')).length;

/** A JWT that claims the unreachable issuer, signed by nobody: only that issuer's keys could tell. */
const claimingCi = () => {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'RS256', kid: 'ci-key' })}.${part({ iss: ciIssuer, aud: 'rekey', sub: 'ci-job', exp: Math.floor(Date.now() / 1000) + 60 })}.${'A'.repeat(342)}`;
};

it('an attested app gets its token while the OIDC issuer named by an earlier grant is unreachable', async () => {
  const before = failures();
  const answer = await exchange(h, await attestationToken(h, 'app-attestation'), { audience: 'api.example.com' });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  expect(answer.body.access_token).toEqual(expect.any(String));
  // ci was asked first and refused a token that does not claim its issuer without reaching for it.
  expect(failures()).toBe(before);
  expect(h.logs.some((line) => line.includes('authenticator ci: claim iss'))).toBe(true);
});

it('a credential no authenticator accepts gets 503 while one of them could not verify it, not the refusal, and counts against its source', async () => {
  const before = failures();
  const counted = vi.spyOn(admission!, 'failed');
  const answer = await exchange(h, claimingCi(), { audience: 'api.example.com' });
  expect(answer.status).toBe(503);
  expect(answer.body).not.toEqual(REFUSED.body);
  expect(failures()).toBeGreaterThan(before);
  // Else garbage sprayed during the outage would be counted nowhere.
  expect(counted).toHaveBeenCalledTimes(1);
  // A valid credential of the working authenticator is not.
  expect((await exchange(h, await attestationToken(h, 'app-attestation'), { audience: 'api.example.com' })).status).toBe(200);
  expect(counted).toHaveBeenCalledTimes(1);
  // The same on GET /v1/secrets and GET /v1/events.
  for (const path of ['/v1/secrets/ci-value', '/v1/events']) {
    const response = await fetch(`${h.serving!.url}${path}`, { headers: { authorization: `Bearer ${claimingCi()}` } });
    expect({ path, status: response.status }).toEqual({ path, status: 503 });
    await response.body?.cancel();
  }
  expect(counted).toHaveBeenCalledTimes(3);
  counted.mockRestore();
  // One that does not claim ci's issuer is refused: ci could never have vouched for it.
  const forged = await attestationToken(h, 'app-attestation');
  expect(await exchange(h, `${forged.slice(0, -4)}AAAA`, { audience: 'api.example.com' })).toMatchObject(REFUSED);
});

it('a 503 says when to come back (Retry-After), and the client and rekey agent wait that long before asking again', async () => {
  const byRoute: Record<string, string | null> = {};
  for (const [path, init] of [
    ['/v1/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: claimingCi(), subject_token_type: JWT_TOKEN_TYPE }) }],
    ['/v1/secrets/ci-value', { headers: { authorization: `Bearer ${claimingCi()}` } }],
    ['/v1/events', { headers: { authorization: `Bearer ${claimingCi()}` } }],
  ] as const) {
    const response = await fetch(`${h.serving!.url}${path}`, init);
    expect({ path, status: response.status }).toEqual({ path, status: 503 });
    byRoute[path] = response.headers.get('retry-after');
    await response.body?.cancel();
  }
  const retryAfter = String(UNAVAILABLE_RETRY_AFTER_S);
  expect(byRoute).toEqual({ '/v1/token': retryAfter, '/v1/secrets/ci-value': retryAfter, '/v1/events': retryAfter });

  // The client: its one retry of each call, and the stream's reconnection, come no sooner (its backoff alone starts below 200 ms).
  const logs: ClientLogEvent[] = [];
  const client = createClient({ url: h.serving!.url, credential: claimingCi, retry: { attempts: 2 }, logger: (event) => logs.push(event) });
  await expect(client.secret('ci-value')).rejects.toMatchObject({ code: 'unavailable', status: 503 });
  await expect(client.token('api.example.com')).rejects.toMatchObject({ code: 'unavailable', status: 503 });
  const stop = client.subscribe(() => {});
  await until(() => Promise.resolve(logs.some((event) => event.code === 'stream_retrying')), 10_000, 'the stream refused and retrying');
  stop();
  const waits = logs.filter((event) => event.code === 'retrying' || event.code === 'stream_retrying');
  expect(waits.map(({ code, status }) => ({ code, status }))).toEqual([
    { code: 'retrying', status: 503 },
    { code: 'retrying', status: 503 },
    { code: 'stream_retrying', status: 503 },
  ]);
  expect(waits.filter((event) => event.delayMs! < UNAVAILABLE_RETRY_AFTER_S * 1000)).toEqual([]);

  // rekey agent asks through the client: its fetch at start is retried no sooner either.
  const agentLogs: AgentLogEvent[] = [];
  const agent = await startAgent(agentOptions(h.serving!.url, { credential: () => Promise.resolve(claimingCi()), secrets: ['ci-value'], logger: (event) => agentLogs.push(event) }));
  await agent.stop();
  const agentWaits = agentLogs.filter((event): event is ClientLogEvent => event.code === 'retrying');
  expect(agentWaits.length).toBeGreaterThan(0);
  expect(agentWaits.filter((event) => event.status !== 503 || event.delayMs! < UNAVAILABLE_RETRY_AFTER_S * 1000)).toEqual([]);
  expect(agentLogs.some((event) => event.code === 'agent_refresh_failed' && event.secret === 'ci-value')).toBe(true);
}, 60_000);
