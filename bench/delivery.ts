/**
 * Delivery (issue 17) over loopback, one run. The servers (rekey's and the bare fastify floor)
 * run in this process; the HTTP load comes from a child process (support/http-load.ts,
 * keep-alive connections), so it does not take the servers' event loop, and both servers are
 * loaded alike. Each phase reports the servers' and the generator's CPU time per answer.
 * 1. Token exchange: POST /v1/token (attestation-jwt HS256 in, ES256 JWT out, audited) at a
 *    fixed concurrency, beside a bare fastify route that parses the same form body, verifies
 *    the same incoming token and signs the same JWT with jose (the floor on this machine);
 *    then both paced at --rate requests/s (p99 at that rate, and the rate achieved).
 * 2. Value delivery: GET /v1/secrets/{name} at the same concurrency, a full answer (store read,
 *    audit) and a 304 on If-None-Match (nothing read, nothing audited), beside a bare fastify
 *    GET that verifies the same bearer token and answers the same value (its floor).
 * 3. Rotation to client notified: --clients streams on GET /v1/events, then --rotations
 *    rotations of the secret; for each client and rotation, the promotion (promotedAt in
 *    PostgreSQL) to the `rotated` event's arrival. p50/p99 over all of them.
 * --cpu-prof DIR writes V8 CPU profiles of this process (the server side) during the token
 * exchange, bare token and value delivery phases: DIR/{token-exchange,bare-token,value-delivery}.cpuprofile.
 *   npm run bench -- delivery [--seconds 5] [--concurrency 16] [--rate 1000] [--clients 1000] [--rotations 3] [--cpu-prof DIR]
 */
import { fork } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { deliveryRoutes, GRANT_TYPE, JWT_TOKEN_TYPE } from '../src/delivery/routes.js';
import setup from '../test/support/global-setup.js';
import { attestationToken, currentVersion, storedValue } from '../test/support/delivery.js';
import { startHarness } from '../test/support/harness.js';
import { openStream, type EventStream } from '../test/support/sse.js';
import { option } from './support/cli.js';
import type { LoadJob, LoadRequest, LoadResult } from './support/http-load.js';
import { percentile, pgCounters } from './support/environment.js';

/** A load run's figures, plus this process's CPU time per answer: far less sensitive to a busy machine than the rate. */
type Run = LoadResult & { serverCpuUs: number };

export async function main(args: string[] = process.argv.slice(2)): Promise<Record<string, unknown>> {
  const seconds = Number(option(args, '--seconds') ?? 5);
  const concurrency = Number(option(args, '--concurrency') ?? 16);
  const rate = Number(option(args, '--rate') ?? 1000);
  const clients = Number(option(args, '--clients') ?? 1000);
  const rotations = Number(option(args, '--rotations') ?? 3);
  const cpuProf = option(args, '--cpu-prof');
  await setup();
  const h = await startHarness({ label: 'bench-delivery', routes: [deliveryRoutes] });
  const bare = Fastify();
  const streams: EventStream[] = [];
  let load: Awaited<ReturnType<typeof loadGenerator>> | undefined;
  try {
    await h.apply(`
providers:
  vault: { type: local }
secrets:
  app-attestation: { store: { provider: vault }, issuer: { type: hmac-key }, grace: 1h }
  api-signing: { store: { provider: vault }, issuer: { type: jwt-signing-key, alg: ES256 }, grace: 10m }
  payments-api-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_pay_ }, grace: 1h }
delivery:
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    mobile: { authenticator: app, subjects: ["app:*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 5m, claims: { copy: [did] } } }
    payments: { authenticator: app, subjects: ["app:*"], value: { secret: payments-api-key, ttl: 5m } }
  rateLimit: { max: 100000, window: 1s }
`);
    for (const secret of ['app-attestation', 'api-signing', 'payments-api-key']) await h.rotate(secret, 60_000);
    const url = h.serving!.url;
    // One attestation token per client loop, each its own subject (as many devices would be).
    const credentials = await Promise.all(Array.from({ length: Math.max(concurrency, 16) }, (_, i) => attestationToken(h, 'app-attestation', { sub: `app:bench-${i}`, ttlSeconds: 3600 })));
    const form = (token: string) => new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: token, subject_token_type: JWT_TOKEN_TYPE, audience: 'api.example.com' }).toString();
    const bodies = credentials.map(form);

    // The floor: the same work with jose alone (HS256 verify with the same secret, ES256 sign with the same key).
    const shared = new TextEncoder().encode(await storedValue(h, 'app-attestation'));
    const jwk = JSON.parse(await storedValue(h, 'api-signing')) as JWK;
    const signingKey = await importJWK(jwk, 'ES256');
    bare.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(String(body)))));
    bare.post('/token', async (request, reply) => {
      const token = (request.body as { subject_token: string }).subject_token;
      const { payload } = await jwtVerify(token, shared, { algorithms: ['HS256'], audience: 'rekey', requiredClaims: ['exp'] });
      const access = await new SignJWT({ did: payload.did })
        .setProtectedHeader({ alg: 'ES256', kid: jwk.kid!, typ: 'JWT' })
        .setIssuer('rekey')
        .setSubject(payload.sub!)
        .setAudience('api.example.com')
        .setIssuedAt()
        .setExpirationTime('5m')
        .setJti(crypto.randomUUID())
        .sign(signingKey);
      return reply.header('cache-control', 'no-store').send({ access_token: access, issued_token_type: JWT_TOKEN_TYPE, token_type: 'Bearer', expires_in: 300 });
    });
    // The floor of value delivery: verify the same bearer token, answer the same value (held in memory, nothing audited).
    const payments = await storedValue(h, 'payments-api-key');
    bare.get('/secret', async (request, reply) => {
      const bearer = (request.headers.authorization ?? '').slice('Bearer '.length);
      await jwtVerify(bearer, shared, { algorithms: ['HS256'], audience: 'rekey', requiredClaims: ['exp'] });
      return reply.header('cache-control', 'no-store').send({ secret: 'payments-api-key', version: 1, value: payments, expiresAt: new Date(Date.now() + 300_000).toISOString() });
    });
    const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });

    const generator = await loadGenerator();
    load = generator;
    const post = (target: string): LoadRequest[] => bodies.map((body) => ({ method: 'POST', url: target, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body }));
    const rekeyToken = post(`${url}/v1/token`);
    const bareToken = post(`${bareUrl}/token`);
    const closed = (requests: LoadRequest[], expected: number, s = seconds) => generator.run({ mode: 'closed', requests, expected, seconds: s, concurrency });
    await closed(rekeyToken, 200, 1); // warm-up
    await closed(bareToken, 200, 1);
    const loadBefore = loadavg()[0]!;
    const commitsBefore = (await pgCounters(h.env.databaseUrl)).commits;
    const exchange = await profiled(cpuProf, 'token-exchange', () => closed(rekeyToken, 200));
    // Hand-outs are audited by group commit: PostgreSQL transactions per exchange (a count, it holds under load).
    const commitsPerExchange = round(((await pgCounters(h.env.databaseUrl)).commits - commitsBefore) / exchange.count, 3);
    const floor = await profiled(cpuProf, 'bare-token', () => closed(bareToken, 200));
    const paced = await generator.run({ mode: 'open', requests: rekeyToken, expected: 200, seconds, concurrency, rate });
    const pacedFloor = await generator.run({ mode: 'open', requests: bareToken, expected: 200, seconds, concurrency, rate });

    const version = (await currentVersion(h, 'payments-api-key')).id;
    const getValue = (target: string, etag?: string): LoadRequest[] =>
      credentials.map((credential) => ({ method: 'GET', url: target, headers: { authorization: `Bearer ${credential}`, ...(etag ? { 'if-none-match': etag } : {}) } }));
    const value = await profiled(cpuProf, 'value-delivery', () => closed(getValue(`${url}/v1/secrets/payments-api-key`), 200));
    const notModified = await closed(getValue(`${url}/v1/secrets/payments-api-key`, `"${version}"`), 304);
    const bareValue = await closed(getValue(`${bareUrl}/secret`), 200);
    const loadAfterHttp = loadavg()[0]!;

    for (let i = 0; i < clients; i++) {
      const stream = await openStream(`${url}/v1/events`, credentials[i % credentials.length]!);
      await stream.next('ready', 60_000);
      streams.push(stream);
    }
    const notifiedMs: number[] = [];
    let missed = 0;
    for (let r = 0; r < rotations; r++) {
      const run = await h.rotate('payments-api-key', 120_000);
      if (run.status !== 'succeeded') throw new Error(`rotation ${run.status}`);
      const promoted = (await currentVersion(h, 'payments-api-key')).promotedAt!.getTime();
      const arrivals = await Promise.all(streams.map((s) => s.next('rotated', 30_000).then((e) => e.at, () => undefined)));
      for (const at of arrivals) {
        if (at === undefined) missed += 1;
        else notifiedMs.push(at - promoted);
      }
    }
    notifiedMs.sort((a, b) => a - b);
    const figures = {
      concurrency,
      seconds,
      tokenExchange: exchange,
      bareFastifyJose: floor,
      ratio: round(exchange.perSecond / floor.perSecond, 2),
      commitsPerExchange,
      pacedTokenExchange: { targetPerSecond: rate, ...paced },
      pacedBareFastifyJose: { targetPerSecond: rate, ...pacedFloor },
      valueDelivery: value,
      valueNotModified: notModified,
      bareValue,
      rotationToClientNotified: { clients, rotations, p50Ms: round(percentile(notifiedMs, 50)), p99Ms: round(percentile(notifiedMs, 99)), maxMs: round(notifiedMs.at(-1) ?? NaN), missed },
      loadAverage: { beforeHttp: round(loadBefore, 2), afterHttp: round(loadAfterHttp, 2), end: round(loadavg()[0]!, 2) },
    };
    console.log(`  token exchange   ${exchange.perSecond}/s  p50 ${exchange.p50Ms} ms  p99 ${exchange.p99Ms} ms  (bare fastify+jose ${floor.perSecond}/s, ratio ${figures.ratio}); ${commitsPerExchange} PostgreSQL commits per exchange`);
    console.log(`  CPU per answer   server: token ${exchange.serverCpuUs} us  bare ${floor.serverCpuUs} us  value ${value.serverCpuUs} us  304 ${notModified.serverCpuUs} us  bare GET ${bareValue.serverCpuUs} us;  load generator (own process): token ${exchange.generatorCpuUs} us  value ${value.generatorCpuUs} us`);
    console.log(`  paced at ${rate}/s  answered 200 ${paced.perSecond}/s  p50 ${paced.p50Ms} ms  p99 ${paced.p99Ms} ms  shed (503 or reset) ${paced.shed};  bare ${pacedFloor.perSecond}/s  p99 ${pacedFloor.p99Ms} ms`);
    console.log(`  value delivery   ${value.perSecond}/s  p99 ${value.p99Ms} ms;  304 ${notModified.perSecond}/s  (bare fastify+jose GET ${bareValue.perSecond}/s)`);
    console.log(`  rotation -> ${clients} clients notified  p50 ${figures.rotationToClientNotified.p50Ms} ms  p99 ${figures.rotationToClientNotified.p99Ms} ms  missed ${missed}`);
    console.log(JSON.stringify({ bench: 'delivery', unit: 'ms', ...figures }));
    return figures;
  } finally {
    load?.stop();
    for (const stream of streams) stream.close();
    await bare.close();
    await h.stop();
  }
}

/** `run()`, with a V8 CPU profile of this process written to `dir`/`name`.cpuprofile when `dir` is given. */
async function profiled<T>(dir: string | undefined, name: string, run: () => Promise<T>): Promise<T> {
  if (!dir) return run();
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) => new Promise<unknown>((resolve, reject) => session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))));
  await post('Profiler.enable');
  await post('Profiler.start');
  try {
    return await run();
  } finally {
    const { profile } = (await post('Profiler.stop')) as { profile: object };
    session.disconnect();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
  }
}

/**
 * The load generator (support/http-load.ts) in a child process. Each run reports its rate and
 * latencies, the generator's CPU per answer, and this process's (the servers': rekey's and the
 * bare routes, which idle while the other is measured) CPU per answer.
 */
async function loadGenerator(): Promise<{ run(job: LoadJob): Promise<Run>; stop(): void }> {
  const child = fork(fileURLToPath(new URL('./support/http-load.ts', import.meta.url)), { execArgv: ['--import', 'tsx'] });
  const exited = new Promise<never>((_resolve, reject) => child.once('exit', (code) => reject(new Error(`load generator exited (${code})`))));
  exited.catch(() => {});
  await Promise.race([new Promise((resolve) => child.once('message', resolve)), exited]); // ready
  return {
    async run(job) {
      const cpu = process.cpuUsage();
      const answer = new Promise<LoadResult>((resolve) => child.once('message', (m) => resolve(m as LoadResult)));
      child.send(job);
      const result = await Promise.race([answer, exited]);
      if (result.error) throw new Error(`load generator: ${result.error}`);
      const used = process.cpuUsage(cpu);
      return { ...result, serverCpuUs: Math.round((used.user + used.system) / Math.max(1, result.count + result.shed)) };
    },
    stop: () => void child.kill(),
  };
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
