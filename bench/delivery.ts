/**
 * Delivery (issue 17) over loopback, one run. Each part runs where it runs in production:
 * rekey's server in this process as `rekey server` runs it (delivery routes, no queue workers,
 * no reconcile or other worker housekeeping); the queue workers that rotate in phase 3 in a
 * process of their own (support/rotation-worker.ts, `rekey worker`'s part); the bare fastify
 * floor in a process of its own (support/bare-delivery.ts: nothing but fastify and jose); the
 * HTTP load from another child (support/http-load.ts, keep-alive connections), which loads both
 * servers alike. Each phase reports the measured server's CPU time per answer, that of its
 * database's PostgreSQL backends (support/pg-cpu.ts: the hand-out journal's transactions, mostly;
 * the idle rotation worker's connections too) and the generator's, and the measured server's
 * scavenges (young-generation collections) per 1,000 answers and their milliseconds in all: how
 * much each answer allocates, steadier than a rate; and the KB those scavenges copied and promoted (what outlived them: what each one costs).
 * 1. Token exchange: POST /v1/token (attestation-jwt HS256 in, ES256 JWT out, audited) at a
 *    fixed concurrency, beside the bare route that parses the same form body, verifies the
 *    same incoming token and signs the same JWT with jose (the floor on this machine); then
 *    both paced at --rate requests/s after a second at that pace (p99 from each request's
 *    scheduled start, the rate achieved, and how late the generator itself was).
 * 2. Value delivery: GET /v1/secrets/{name} at the same concurrency, a full answer (store read,
 *    audit) and a 304 on If-None-Match (nothing read, nothing audited), beside a bare fastify
 *    GET that verifies the same bearer token and answers the same value (its floor).
 * 3. Rotation to client notified: --clients streams on GET /v1/events, then --rotations
 *    rotations of the secret; for each client and rotation, the promotion (promotedAt in
 *    PostgreSQL) to the `rotated` event's arrival. p50/p99 over all of them.
 * --cpu-prof DIR writes V8 CPU profiles of the measured server during the token exchange, bare
 * token, paced token and value delivery phases:
 * DIR/{token-exchange,bare-token,paced-token,value-delivery}.cpuprofile.
 *   npm run bench -- delivery [--seconds 5] [--concurrency 16] [--rate 1000] [--clients 1000] [--rotations 3] [--cpu-prof DIR]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JWK } from 'jose';
import pg from 'pg';
import { serve } from '../src/cli/serve.js';
import { deliveryRoutes, GRANT_TYPE, JWT_TOKEN_TYPE } from '../src/delivery/routes.js';
import setup from '../test/support/global-setup.js';
import { attestationToken, currentVersion, storedValue } from '../test/support/delivery.js';
import { startHarness } from '../test/support/harness.js';
import { openStream, type EventStream } from '../test/support/sse.js';
import type { BareMessage, BareSetup } from './support/bare-delivery.js';
import { option } from './support/cli.js';
import type { LoadJob, LoadRequest, LoadResult } from './support/http-load.js';
import { percentile, pgCounters } from './support/environment.js';
import { startProfile } from './support/profile.js';
import { usage, type Usage } from './support/gc.js';
import { cpuSpent, postgresCpuMs } from './support/pg-cpu.js';

/**
 * A load run's figures, plus the measured server's CPU time per answer and scavenges per 1,000
 * answers (with their total milliseconds): far less sensitive to a busy machine than the rate.
 */
type Run = LoadResult & { serverCpuUs: number; postgresCpuUs: number; scavengesPer1k: number; scavengeMs: number; survivorsKB: Survivors; handOutsPerCommit?: number };

/** KB the measured server's scavenges copied (survived one) and promoted (survived two), per scavenge and per 1,000 answers. */
interface Survivors {
  copiedPerScavenge: number;
  promotedPerScavenge: number;
  copiedPer1k: number;
  promotedPer1k: number;
}

/** How a phase reads the CPU time and scavenges of the server it loads, and profiles it. */
interface Measured {
  usage(): Promise<Usage>;
  /** CPU ms so far of each PostgreSQL backend of its database (its hand-out journal's among them); none for the bare floor. */
  postgresMs?(): Promise<Map<number, number>>;
  /** The audit log's delivery rows so far and the transactions that wrote them (see {@link handOutsSince}); none for the bare floor. */
  handOuts?(): Promise<HandOutRows>;
  profile(): Promise<(file: string) => Promise<void>>;
}

export async function main(args: string[] = process.argv.slice(2)): Promise<Record<string, unknown>> {
  const seconds = Number(option(args, '--seconds') ?? 5);
  const concurrency = Number(option(args, '--concurrency') ?? 16);
  const rate = Number(option(args, '--rate') ?? 1000);
  const clients = Number(option(args, '--clients') ?? 1000);
  const rotations = Number(option(args, '--rotations') ?? 3);
  const cpuProf = option(args, '--cpu-prof');
  await setup();
  // No workers here: `rekey server` runs none (src/cli/actions/processes.ts).
  const h = await startHarness({ label: 'bench-delivery', workers: false });
  const server = await serve(h.runtime, { port: 0, host: '127.0.0.1', workers: false, routes: [deliveryRoutes] });
  const children: ChildProcess[] = [];
  const streams: EventStream[] = [];
  let handOutRows: pg.Pool | undefined;
  try {
    // The queue workers that run phase 3's rotations (and the setup's): `rekey worker`'s part, in a process of its own.
    const worker = fork(fileURLToPath(new URL('./support/rotation-worker.ts', import.meta.url)), { execArgv: ['--import', 'tsx'], env: { ...h.childEnv(), CONCURRENCY: '5' } });
    children.push(worker);
    await ready(worker);
    await h.apply(`
providers:
  vault: { type: local }
secrets:
  app-attestation: { store: { provider: vault }, issuer: { type: hmac-key }, grace: 1h }
  api-signing: { store: { provider: vault }, issuer: { type: jwt-signing-key, alg: ES256 }, grace: 10m }
  payments-api-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_pay_ }, grace: 1h, schedule: { cron: "0 3 * * 1", timezone: UTC } }
delivery:
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    mobile: { authenticator: app, subjects: ["app:*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 5m, claims: { copy: [did] } } }
    payments: { authenticator: app, subjects: ["app:*"], value: { secret: payments-api-key, ttl: 5m } }
  rateLimit: { max: 100000, window: 1s }
`);
    for (const secret of ['app-attestation', 'api-signing', 'payments-api-key']) await h.rotate(secret, 60_000);
    const url = server.url;
    // One attestation token per client loop, each its own subject (as many devices would be).
    const credentials = await Promise.all(Array.from({ length: Math.max(concurrency, 16) }, (_, i) => attestationToken(h, 'app-attestation', { sub: `app:bench-${i}`, ttlSeconds: 3600 })));
    const form = (token: string) => new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: token, subject_token_type: JWT_TOKEN_TYPE, audience: 'api.example.com' }).toString();
    const bodies = credentials.map(form);

    // The floor: the same work with fastify and jose alone, in a process of its own.
    const bareSetup: BareSetup = {
      attestationSecret: await storedValue(h, 'app-attestation'),
      signingJwk: JSON.parse(await storedValue(h, 'api-signing')) as JWK,
      value: await storedValue(h, 'payments-api-key'),
      tokenType: JWT_TOKEN_TYPE,
    };
    const bareProcess = fork(fileURLToPath(new URL('./support/bare-delivery.ts', import.meta.url)), { execArgv: ['--import', 'tsx'] });
    children.push(bareProcess);
    const bare = bareServer(bareProcess);
    const bareUrl = await bare.listen(bareSetup);
    handOutRows = new pg.Pool({ connectionString: h.env.databaseUrl, max: 1 });
    const rekey: Measured = { usage: () => Promise.resolve(usage()), postgresMs: () => postgresCpuMs(h.env.databaseUrl), handOuts: () => handOutsSince(handOutRows!), profile: startProfile };

    const generator = await loadGenerator();
    children.push(generator.child);
    const post = (target: string): LoadRequest[] => bodies.map((body) => ({ method: 'POST', url: target, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body }));
    const rekeyToken = post(`${url}/v1/token`);
    const bareToken = post(`${bareUrl}/token`);
    const closed = (server: Measured, requests: LoadRequest[], expected: number, s = seconds) => generator.run(server, { mode: 'closed', requests, expected, seconds: s, concurrency });
    // One exchange before any load: it proves 127.0.0.1 to admission (src/http/admission.ts), so the
    // load has the cap of a proven address (32 requests awaiting authentication at once), not the
    // 16 of an address that never authenticated. A --concurrency above 32 is refused 429 in part.
    const proof = await fetch(`${url}/v1/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: bodies[0] });
    if (proof.status !== 200) throw new Error(`the first token exchange answered ${proof.status}`);
    await closed(rekey, rekeyToken, 200, 1); // warm-up
    await closed(bare, bareToken, 200, 1);
    const loadBefore = loadavg()[0]!;
    const commitsBefore = (await pgCounters(h.env.databaseUrl)).commits;
    const exchange = await profiled(rekey, cpuProf, 'token-exchange', () => closed(rekey, rekeyToken, 200));
    // Hand-outs are audited by group commit: PostgreSQL transactions per exchange (a count, it holds under load).
    const commitsPerExchange = round(((await pgCounters(h.env.databaseUrl)).commits - commitsBefore) / exchange.count, 3);
    const floor = await profiled(bare, cpuProf, 'bare-token', () => closed(bare, bareToken, 200));
    // Each after a second at the same pace, not measured, as the closed phases have theirs: the rekey
    // server has sat idle for 16 s (the commit count's wait, the bare phase), and its first
    // requests would measure the reads the idle spell let expire (39-44 ms each), not the steady pace.
    const pacedAt = (server: Measured, requests: LoadRequest[], s = seconds) => generator.run(server, { mode: 'open', requests, expected: 200, seconds: s, concurrency, rate });
    await pacedAt(rekey, rekeyToken, 1);
    const paced = await profiled(rekey, cpuProf, 'paced-token', () => pacedAt(rekey, rekeyToken));
    await pacedAt(bare, bareToken, 1);
    const pacedFloor = await pacedAt(bare, bareToken);

    const version = (await currentVersion(h, 'payments-api-key')).id;
    const getValue = (target: string, etag?: string): LoadRequest[] =>
      credentials.map((credential) => ({ method: 'GET', url: target, headers: { authorization: `Bearer ${credential}`, ...(etag ? { 'if-none-match': etag } : {}) } }));
    const value = await profiled(rekey, cpuProf, 'value-delivery', () => closed(rekey, getValue(`${url}/v1/secrets/payments-api-key`), 200));
    const notModified = await closed(rekey, getValue(`${url}/v1/secrets/payments-api-key`, `"${version}"`), 304);
    const bareValue = await closed(bare, getValue(`${bareUrl}/secret`), 200);
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
    console.log(`  CPU per answer   server: token ${exchange.serverCpuUs} us  bare ${floor.serverCpuUs} us  value ${value.serverCpuUs} us  304 ${notModified.serverCpuUs} us  bare GET ${bareValue.serverCpuUs} us;  PostgreSQL: token ${exchange.postgresCpuUs} us  paced ${paced.postgresCpuUs} us  value ${value.postgresCpuUs} us  304 ${notModified.postgresCpuUs} us;  load generator (own process): token ${exchange.generatorCpuUs} us  value ${value.generatorCpuUs} us`);
    console.log(`  scavenges per 1,000 answers (ms in all)  token ${exchange.scavengesPer1k} (${exchange.scavengeMs})  bare ${floor.scavengesPer1k} (${floor.scavengeMs});  paced token ${paced.scavengesPer1k} (${paced.scavengeMs})  bare ${pacedFloor.scavengesPer1k} (${pacedFloor.scavengeMs});  value ${value.scavengesPer1k}  bare GET ${bareValue.scavengesPer1k}`);
    const kept = (r: Run) => `${r.survivorsKB.copiedPerScavenge}/${r.survivorsKB.promotedPerScavenge} (${r.survivorsKB.copiedPer1k}/${r.survivorsKB.promotedPer1k})`;
    console.log(`  survivors KB copied/promoted per scavenge (per 1,000 answers)  token ${kept(exchange)}  bare ${kept(floor)};  paced token ${kept(paced)}  bare ${kept(pacedFloor)};  value ${kept(value)}  bare GET ${kept(bareValue)}`);
    console.log(`  paced at ${rate}/s  answered 200 ${paced.perSecond}/s  p50 ${paced.p50Ms} ms  p99 ${paced.p99Ms} ms  shed (503 or reset) ${paced.shed};  bare ${pacedFloor.perSecond}/s  p50 ${pacedFloor.p50Ms} ms  p99 ${pacedFloor.p99Ms} ms;  generator late p99 ${paced.lateP99Ms} / ${pacedFloor.lateP99Ms} ms`);
    console.log(`  value delivery   ${value.perSecond}/s  p99 ${value.p99Ms} ms;  304 ${notModified.perSecond}/s  (bare fastify+jose GET ${bareValue.perSecond}/s)`);
    console.log(`  audited hand-outs per journal commit  token ${exchange.handOutsPerCommit}  paced ${paced.handOutsPerCommit}  value ${value.handOutsPerCommit}`);
    console.log(`  rotation -> ${clients} clients notified  p50 ${figures.rotationToClientNotified.p50Ms} ms  p99 ${figures.rotationToClientNotified.p99Ms} ms  missed ${missed}`);
    console.log(JSON.stringify({ bench: 'delivery', unit: 'ms', ...figures }));
    return figures;
  } finally {
    await handOutRows?.end();
    for (const stream of streams) stream.close();
    for (const child of children) child.kill();
    await server.stop(); // closes the runtime too
    await h.env.cleanup();
  }
}

/** `run()`, with a V8 CPU profile of `server` written to `dir`/`name`.cpuprofile when `dir` is given. */
async function profiled<T>(server: Measured, dir: string | undefined, name: string, run: () => Promise<T>): Promise<T> {
  if (!dir) return run();
  const stop = await server.profile();
  try {
    return await run();
  } finally {
    await stop(join(dir, `${name}.cpuprofile`));
  }
}

/** The bare floor's process (support/bare-delivery.ts), driven over IPC. */
function bareServer(child: ChildProcess): Measured & { listen(setup: BareSetup): Promise<string> } {
  const ask = <T>(message: BareSetup | BareMessage, key: string) =>
    new Promise<T>((resolve) => {
      const on = (m: Record<string, unknown>) => {
        if (!(key in m)) return;
        child.off('message', on);
        resolve(m[key] as T);
      };
      child.on('message', on);
      child.send(message);
    });
  return {
    listen: (setup) => ask<string>(setup, 'url'),
    usage: () => ask<Usage>('cpu', 'usage'),
    profile: async () => {
      await ask('profile-start', 'profiling');
      return (file) => ask<void>({ profileStop: file }, 'profiled');
    },
  };
}

/** Resolves once `child` sends its first message (`ready`); rejects if it exits first. */
async function ready(child: ChildProcess): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before it was ready`)));
  });
}

/**
 * The load generator (support/http-load.ts) in a child process. Each run reports its rate and
 * latencies, the generator's CPU per answer, and the loaded server's CPU and scavenges per answer.
 */
async function loadGenerator(): Promise<{ run(server: Measured, job: LoadJob): Promise<Run>; child: ChildProcess }> {
  const child = fork(fileURLToPath(new URL('./support/http-load.ts', import.meta.url)), { execArgv: ['--import', 'tsx'] });
  const exited = new Promise<never>((_resolve, reject) => child.once('exit', (code) => reject(new Error(`load generator exited (${code})`))));
  exited.catch(() => {});
  await Promise.race([new Promise((resolve) => child.once('message', resolve)), exited]); // ready
  return {
    async run(server, job) {
      const handOutsBefore = await server.handOuts?.();
      const pgBefore = (await server.postgresMs?.()) ?? new Map<number, number>();
      const before = await server.usage();
      const answer = new Promise<LoadResult>((resolve) => child.once('message', (m) => resolve(m as LoadResult)));
      child.send(job);
      const result = await Promise.race([answer, exited]);
      if (result.error) throw new Error(`load generator: ${result.error}`);
      const after = await server.usage();
      const pgAfter = (await server.postgresMs?.()) ?? new Map<number, number>();
      const handOutsAfter = await server.handOuts?.();
      const commits = handOutsAfter && handOutsBefore ? handOutsAfter.transactions - handOutsBefore.transactions : 0;
      const answers = Math.max(1, result.count + result.shed);
      const scavenges = Math.max(1, after.scavenges - before.scavenges);
      const copied = (after.copiedBytes - before.copiedBytes) / 1024;
      const promoted = (after.promotedBytes - before.promotedBytes) / 1024;
      return {
        ...result,
        serverCpuUs: Math.round((after.cpuUs - before.cpuUs) / answers),
        postgresCpuUs: Math.round((cpuSpent(pgBefore, pgAfter) * 1000) / answers),
        scavengesPer1k: round(((after.scavenges - before.scavenges) * 1000) / answers),
        scavengeMs: round(after.scavengeMs - before.scavengeMs),
        ...(commits > 0 ? { handOutsPerCommit: round((handOutsAfter!.rows - handOutsBefore!.rows) / commits, 2) } : {}),
        survivorsKB: {
          copiedPerScavenge: Math.round(copied / scavenges),
          promotedPerScavenge: Math.round(promoted / scavenges),
          copiedPer1k: Math.round((copied * 1000) / answers),
          promotedPer1k: Math.round((promoted * 1000) / answers),
        },
      };
    },
    child,
  };
}

/** The audit log's delivery rows (`delivery.*`) and how many transactions wrote them, counted by distinct xmin. */
interface HandOutRows {
  rows: number;
  transactions: number;
}

/**
 * The delivery rows of the audit log and the transactions that wrote them (each batch of the
 * hand-out journal is one): a phase's difference is its audited hand-outs per journal commit,
 * a count that holds under load. Read by xmin, not pg_stat_database's commits (reported up to
 * 10 s late, see pgCounters). 304 answers write no row, so they are not counted.
 */
async function handOutsSince(pool: pg.Pool): Promise<HandOutRows> {
  const { rows } = await pool.query<{ rows: string; transactions: string }>(
    "SELECT count(*) AS rows, count(DISTINCT xmin::text) AS transactions FROM audit_events WHERE action LIKE 'delivery.%'",
  );
  return { rows: Number(rows[0]!.rows), transactions: Number(rows[0]!.transactions) };
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
