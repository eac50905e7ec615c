/**
 * A server that closes (SIGTERM, a rolling deploy) closes promptly: a connection whose request
 * was still being answered when the close began is closed once that answer is sent, instead of
 * staying open on keep-alive for fastify's 72 s and holding the close (past Kubernetes' grace
 * period, past a test's hook timeout); and a change stream whose caller was still being
 * authenticated when the close began is refused 503, instead of opening after the server ended
 * its streams and holding the close until its credential expires. And a request whose body
 * never finishes is cut within REQUEST_TIMEOUT_MS, not after Node's 60 to 90 s.
 */
import { request as httpRequest, Agent, type IncomingMessage } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { buildServer, REQUEST_TIMEOUT_MS, type RouteModule } from '../../src/http/server.js';
import { attestationToken, currentVersion, DELIVERY_KEYS } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ label: 'http-close' });
  await h.apply(`${DELIVERY_KEYS}
  payments-api-key: { store: { provider: vault }, issuer: { type: random }, grace: 1h }
delivery:
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    app-payments: { authenticator: app, subjects: ["app:*"], value: { secret: payments-api-key } }
`);
  for (const secret of ['app-attestation', 'payments-api-key']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(() => h?.stop());

/** A server of these routes on a port of its own, and what its close began (its preClose hooks ran). */
async function serverOf(routes: RouteModule[]) {
  let closing!: () => void;
  const began = new Promise<void>((resolve) => (closing = resolve));
  const app = await buildServer(h.runtime, [...routes, (scope) => void scope.addHook('preClose', (done) => (closing(), done()))]);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.server.address() as AddressInfo).port, began };
}

/** GET on a keep-alive connection of its own: the answer's status (once its head is in) and body (once it ended), and the connection's end. */
function get(port: number, path: string, headers: Record<string, string> = {}): { answer: Promise<{ status: number; body: Promise<string> }>; closed: Promise<void> } {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let socketClosed!: () => void;
  const closed = new Promise<void>((resolve) => (socketClosed = resolve));
  const answer = new Promise<{ status: number; body: Promise<string> }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent, headers }, (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      resolve({ status: res.statusCode ?? 0, body: new Promise((ended) => res.on('end', () => ended(text))) });
    });
    req.on('socket', (socket) => socket.once('close', () => socketClosed()));
    req.on('error', reject);
    req.end();
  });
  return { answer, closed };
}

/** 'ended', or what is still open after `ms`: without the fixes a connection stays open for the keep-alive (72 s) or the stream's credential. */
const endsWithin = (what: string, ending: Promise<unknown>, ms: number) =>
  Promise.race([ending.then(() => 'ended'), new Promise((resolve) => setTimeout(() => resolve(`${what} still open after ${ms} ms`), ms).unref())]);

it('a request in flight when the close began is answered, then its keep-alive connection is closed and the close ends', async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let arrived!: () => void;
  const inFlight = new Promise<void>((resolve) => (arrived = resolve));
  const { app, port, began } = await serverOf([
    (scope) =>
      void scope.get('/slow', async () => {
        arrived();
        await held;
        return { ok: true };
      }),
  ]);
  const { answer, closed } = get(port, '/slow');
  await inFlight;
  const close = app.close();
  await began;
  release();
  expect((await answer).status).toBe(200);
  expect(await endsWithin('the connection', closed, 20_000)).toBe('ended');
  expect(await endsWithin('the server', close, 20_000)).toBe('ended');
});

it('a change stream whose caller was being authenticated when the close began is refused 503, and the close ends', async () => {
  const { app, port, began } = await serverOf([deliveryRoutes]);
  const token = await attestationToken(h, 'app-attestation', { sub: 'app:closing' });
  // The stream's check of the attestation version (FOR SHARE, in the hand-out journal) waits behind this lock.
  const version = await currentVersion(h, 'app-attestation');
  const locker = new pg.Client({ connectionString: h.env.databaseUrl });
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('SELECT 1 FROM versions WHERE id = $1 FOR UPDATE', [version.id]);
    const { answer, closed } = get(port, '/v1/events', { authorization: `Bearer ${token}` });
    // (Asked on another connection: inside the locker's transaction, pg_stat_activity is one snapshot.)
    const waiting = () => h.runtime.db.$queryRaw<unknown[]>`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
    await until(async () => (await waiting()).length > 0, 30_000, 'the stream waits on the version');
    const close = app.close();
    await began;
    await locker.query('COMMIT');
    const refused = await answer;
    expect(refused.status).toBe(503);
    expect(JSON.parse(await refused.body)).toMatchObject({ error: 'temporarily_unavailable' });
    expect(await endsWithin('the connection', closed, 20_000)).toBe('ended');
    expect(await endsWithin('the server', close, 20_000)).toBe('ended');
  } finally {
    await locker.end();
  }
});

it('a request whose body never finishes is answered 408 and its connection closed within REQUEST_TIMEOUT_MS', async () => {
  const { app, port } = await serverOf([(scope) => void scope.post('/upload', () => ({ ok: true }))]);
  const socket = connect(port, '127.0.0.1');
  try {
    const started = performance.now();
    let answer = '';
    const closed = new Promise<void>((resolve) => {
      socket.once('connect', () => socket.write('POST /upload HTTP/1.1\r\nHost: rekey\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"a":'));
      socket.on('data', (chunk: Buffer) => (answer ||= chunk.toString('latin1').split('\r\n')[0]!));
      socket.on('error', () => {});
      socket.on('close', () => resolve());
    });
    // Node looks at its connections every second: the bound allows that and a loaded machine.
    expect(await endsWithin('the slow request', closed, REQUEST_TIMEOUT_MS + 5000)).toBe('ended');
    expect(answer).toBe('HTTP/1.1 408 Request Timeout');
    expect(performance.now() - started).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
  } finally {
    socket.destroy();
    await app.close();
  }
}, REQUEST_TIMEOUT_MS + 30_000);
