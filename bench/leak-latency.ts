// Leak-to-blocked at a real HAProxy, and verified GitHub-format reports per second.
//
// 1. Leak-to-blocked: a signed Standard Webhooks report of a live key is POSTed to the
//    leak receiver of an in-process rekey (harness: own database and queue prefix, workers
//    running, 5 rotations / 5 revocations workers), and the key is sent through HAProxy
//    back to back until HAProxy refuses it. p50/p99 per onLeak policy (rotate-then-revoke:
//    an emergency rotation replaces the key, then it is retired; block-first: retired at
//    once), on an idle system and with a rotations backlog: every rotations worker busy
//    with a slow rotation and 5,000 rotation jobs queued behind them.
// 2. Throughput: POST /webhooks/github-secret-scanning with distinct bodies signed
//    beforehand (ECDSA P-256, one unknown token each: verify, fingerprint, match, record),
//    next to a bare fastify route that parses the same JSON and answers, same client, same
//    process, same machine. Reported as a ratio.
//
//   npm run bench -- leak-latency [--iterations 20] [--seconds 5] [--backlog 5000]
import { createPublicKey, randomUUID, verify } from 'node:crypto';
import { Agent } from 'node:http';
import Fastify from 'fastify';
import setup from '../test/support/global-setup.js';
import { latencyConfig, measureLeak, rotationBacklog, slowDown, type LatencySample } from '../test/integration/leaks/latency.js';
import { startLeakEnv, type LeakEnv } from '../test/integration/leaks/support.js';
import { option } from './support/cli.js';
import { percentile } from './support/environment.js';

interface Summary {
  p50: number;
  p99: number;
  max: number;
  n: number;
}

interface Figures {
  leakToBlockedMs: Record<string, { idle: Summary; backlog: Summary; answerIdle: Summary; answerBacklog: Summary }>;
  backlogQueued: { before: number; after: number };
  githubReportsPerSecond: number;
  bareFastifyPerSecond: number;
  ratio: number;
  /** ECDSA P-256 verifications of a GitHub-sized body per second, alone: the receiver's own cryptography. */
  signatureChecksPerSecond: number;
}

export async function main(args: string[] = process.argv.slice(2)): Promise<Figures> {
  const iterations = Number(option(args, '--iterations') ?? 20);
  const seconds = Number(option(args, '--seconds') ?? 5);
  const queued = Number(option(args, '--backlog') ?? 5000);
  await setup(); // the migrated template database the harness clones
  const e = await startLeakEnv('bench');
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const id = randomUUID().slice(0, 8);
  const policies = { 'rotate-then-revoke': `bench-rtr-${id}`, 'block-first': `bench-bf-${id}` } as const;
  const slow = Array.from({ length: 5 }, (_, i) => `bench-slow-${id}-${i}`);
  const names = { journal: `bench-fast-${id}`, slowJournal: `bench-slow-${id}` };
  try {
    const fast = Object.entries(policies).map(([onLeak, name]) => ({ name, onLeak }));
    await e.h.apply(latencyConfig(e, { fast, slow, ...names }));
    for (const secret of Object.values(policies)) await e.h.rotate(secret);

    const samples = async (secret: string): Promise<LatencySample[]> => {
      const out: LatencySample[] = [];
      await measureLeak(e, secret, agent); // warm-up, not counted
      for (let i = 0; i < iterations; i++) out.push(await measureLeak(e, secret, agent));
      return out;
    };
    const idle: Record<string, LatencySample[]> = {};
    for (const [policy, secret] of Object.entries(policies)) idle[policy] = await samples(secret);

    // Slow enough that the rotations workers stay busy for the whole loaded phase.
    const waiting = await rotationBacklog(e, { slow, slowJournal: names.slowJournal, callMs: 120_000, queued });
    const before = await waiting();
    const loaded: Record<string, LatencySample[]> = {};
    for (const [policy, secret] of Object.entries(policies)) loaded[policy] = await samples(secret);
    const after = await waiting();
    slowDown({ slow, ...names }, 0);

    const leakToBlockedMs: Figures['leakToBlockedMs'] = {};
    for (const policy of Object.keys(policies)) {
      leakToBlockedMs[policy] = {
        idle: summarize(idle[policy]!.map((s) => s.blockedMs)),
        backlog: summarize(loaded[policy]!.map((s) => s.blockedMs)),
        answerIdle: summarize(idle[policy]!.map((s) => s.answerMs)),
        answerBacklog: summarize(loaded[policy]!.map((s) => s.answerMs)),
      };
    }

    const githubReportsPerSecond = await throughput(e.h.serving!.url, '/webhooks/github-secret-scanning', seconds, (i) => githubReport(e, i));
    const bareFastifyPerSecond = await bareThroughput(seconds);
    const signatureChecksPerSecond = verifyRate(e);
    const figures: Figures = {
      leakToBlockedMs,
      backlogQueued: { before, after },
      githubReportsPerSecond,
      bareFastifyPerSecond,
      ratio: githubReportsPerSecond / bareFastifyPerSecond,
      signatureChecksPerSecond,
    };
    printReport(figures, iterations, queued);
    console.log(JSON.stringify({ bench: 'leak-latency', iterations, unit: 'ms', ...figures }));
    return figures;
  } catch (error) {
    console.error(await e.h.runtime.metrics.registry.getSingleMetricAsString('rekey_webhook_rejected_total'));
    throw error;
  } finally {
    agent.destroy();
    await e.stop();
  }
}

/** A distinct, pre-signed GitHub request: one match with an unknown token (the full path, every time). */
function githubReport(e: LeakEnv, i: number): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify([{ token: `rk_bench_${i}_${randomUUID().replaceAll('-', '')}`, type: 'rekey_api_key', url: '', source: 'content' }]);
  return { body, headers: e.github.headers(body) };
}

const CONCURRENCY = 16;

/** Requests answered per second with CONCURRENCY clients in a loop, over kept-alive connections. */
async function throughput(base: string, path: string, seconds: number, make: (i: number) => { body: string; headers: Record<string, string> }): Promise<number> {
  const prepared = Array.from({ length: Math.max(2000, seconds * 1500) }, (_, i) => make(i));
  const url = new URL(path, base);
  let next = 0;
  let done = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  const loop = async () => {
    while (performance.now() < deadline && next < prepared.length) {
      const { body, headers } = prepared[next++]!;
      const response = await fetch(url, { method: 'POST', headers, body });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`${path} answered ${response.status}`);
      done += 1;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  return done / ((performance.now() - started) / 1000);
}

/** The same client against a fastify route that only parses the JSON body and answers. */
async function bareThroughput(seconds: number): Promise<number> {
  const app = Fastify();
  app.post('/bare', (request) => (request.body as unknown[]).map(() => ({ label: 'false_positive' })));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    return await throughput(url, '/bare', seconds, (i) => ({
      body: JSON.stringify([{ token: `rk_bench_${i}_${randomUUID().replaceAll('-', '')}`, type: 'rekey_api_key', url: '', source: 'content' }]),
      headers: { 'content-type': 'application/json' },
    }));
  } finally {
    await app.close();
  }
}

function verifyRate(e: LeakEnv): number {
  const { body, headers } = githubReport(e, 0);
  const key = createPublicKey(e.github.privateKey);
  const signature = Buffer.from(headers['github-public-key-signature']!, 'base64');
  const started = performance.now();
  let n = 0;
  while (performance.now() - started < 1000) {
    if (!verify('sha256', Buffer.from(body), key, signature)) throw new Error('signature did not verify');
    n += 1;
  }
  return n / ((performance.now() - started) / 1000);
}

function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 10) / 10;
  return { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1)!), n: sorted.length };
}

function printReport(f: Figures, iterations: number, queued: number): void {
  console.log(`\nleak-to-blocked at HAProxy (ms, ${iterations} leaks each; report POSTed -> leaked key refused by HAProxy)`);
  if (iterations < 100) console.log(`  (p99 of ${iterations} samples is at or next to the max)`);
  console.log('  policy               load                         p50      p99      max   | receiver answered p50');
  for (const [policy, s] of Object.entries(f.leakToBlockedMs)) {
    const row = (load: string, x: Summary, a: Summary) =>
      console.log(`  ${policy.padEnd(20)} ${load.padEnd(26)} ${String(x.p50).padStart(7)}  ${String(x.p99).padStart(7)}  ${String(x.max).padStart(7)}   | ${a.p50}`);
    row('idle', s.idle, s.answerIdle);
    row(`${queued} rotations queued`, s.backlog, s.answerBacklog);
  }
  console.log(`  rotation jobs waiting: ${f.backlogQueued.before} before the loaded leaks, ${f.backlogQueued.after} after (all rotations workers busy)`);
  console.log(`\nverified GitHub-format reports: ${Math.round(f.githubReportsPerSecond)}/s; bare fastify route: ${Math.round(f.bareFastifyPerSecond)}/s; ratio ${f.ratio.toFixed(3)}`);
  console.log(`  (ECDSA P-256 checks alone: ${Math.round(f.signatureChecksPerSecond)}/s; each report also records a leak row and a hash-chained audit event)\n`);
}
