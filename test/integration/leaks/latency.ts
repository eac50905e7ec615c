// Leak-to-blocked as a client sees it, shared by backlog.test.ts and bench/leak-latency.ts:
// a signed report is POSTed, and the leaked key is sent through HAProxy back to back until
// it is refused. And a rotations backlog that is real: every rotations worker busy with a
// slow rotation, thousands of rotation jobs waiting behind them.
import { randomUUID } from 'node:crypto';
import type { Agent } from 'node:http';
import { jobId } from '../../../src/queue/names.js';
import { send } from '../../support/gateways/index.js';
import { journal } from '../../support/memory-provider.js';
import { leaksYaml, post, providersYaml, storedValue, until, webhookHeaders, type LeakEnv } from './support.js';

export interface LatencySample {
  /** POST sent -> first request with the leaked key refused by HAProxy (ms). */
  blockedMs: number;
  /** How long the receiver took to answer the report (ms). */
  answerMs: number;
}

/**
 * The config: `fast` secrets (memory store and issuer, HAProxy target, their `onLeak`)
 * that leak, and `slow` secrets (no targets) whose store and issuer calls can be slowed
 * down to keep the rotations workers busy. The memory provider's stages are per journal,
 * so every secret gets a journal of its own: `<journal>-<i>` and `<slowJournal>-<i>`.
 */
export function latencyConfig(e: LeakEnv, o: { fast: Array<{ name: string; onLeak: string }>; slow: string[]; journal: string; slowJournal: string }): string {
  const secret = (name: string, provider: string, targets: string, onLeak: string) => `
  ${name}:
    store: { provider: ${provider} }
    issuer: { provider: ${provider} }
    targets: ${targets}
    grace: 1h
    onLeak: ${onLeak}
    retry: { attempts: 3, backoff: 100ms }
    timeout: 300s`;
  const providers = [
    ...o.fast.map((_, i) => `  mem-${i}: { type: memory, journal: ${o.journal}-${i} }`),
    ...o.slow.map((_, i) => `  slowmem-${i}: { type: memory, journal: ${o.slowJournal}-${i} }`),
  ];
  return `${providersYaml(e, providers.join('\n'))}
secrets:${o.fast.map((f, i) => secret(f.name, `mem-${i}`, '[edge]', f.onLeak)).join('')}${o.slow.map((n, i) => secret(n, `slowmem-${i}`, '[]', 'rotate-then-revoke')).join('')}
${leaksYaml(e)}`;
}

/** Sets the delay of every slow secret's calls. */
export function slowDown(o: { slow: string[]; slowJournal: string }, callMs: number): void {
  o.slow.forEach((_, i) => (journal(`${o.slowJournal}-${i}`).delayMs = callMs));
}

/** Reports the current key of `secret` through the Standard Webhooks receiver and times until HAProxy refuses it. */
export async function measureLeak(e: LeakEnv, secret: string, agent: Agent): Promise<LatencySample> {
  const token = (await storedValue(e.h, secret)).reveal();
  const body = JSON.stringify({ token });
  const headers = webhookHeaders(e.secrets.webhook, body);
  const started = performance.now();
  const answered = post(e.h.serving!.url, '/webhooks/leaks', body, headers).then((a) => {
    if (a.status !== 200) throw new Error(`report answered ${a.status}`);
    return performance.now() - started;
  });
  let blockedMs: number;
  for (;;) {
    const status = await send(e.gateway.url, e.gateway.header, token, agent).then((a) => a.status, () => 0);
    if (status === 401) {
      blockedMs = performance.now() - started;
      break;
    }
    if (performance.now() - started > 30_000) throw new Error('the leaked key was not blocked within 30 s');
  }
  const answerMs = await answered;
  // Settle before the next sample: the replacement is current and the revocation finished. No
  // running run alone does not say so: the revocation's run may not exist yet (its job is queued
  // after the promotion that replaced the key has committed and blocked it at the gateway).
  const db = e.h.runtime.db;
  const settled = async () =>
    (await db.run.count({ where: { status: 'running', secret: { name: secret } } })) === 0 &&
    (await db.version.count({ where: { state: 'compromised', secret: { name: secret } } })) === 0;
  await until(settled, 30_000);
  return { blockedMs, answerMs };
}

/**
 * Makes the rotations queue busy: one slow rotation per rotations worker (each store and
 * issuer call of `slowJournal` takes `callMs`), then `queued` more rotation jobs behind
 * them. The queued jobs name runs that do not exist (a worker would skip each in a
 * millisecond), which keeps the setup cheap; they never get a worker while the slow
 * rotations run, which is what a backlog is.
 */
export async function rotationBacklog(e: LeakEnv, o: { slow: string[]; slowJournal: string; callMs: number; queued: number }): Promise<() => Promise<number>> {
  slowDown(o, o.callMs);
  for (const secret of o.slow) await e.h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  const rotations = e.h.runtime.queues.queues.rotations;
  await until(async () => ((await rotations.getJobCounts('active')).active ?? 0) >= o.slow.length, 10_000);
  for (let i = 0; i < o.queued; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, o.queued - i) }, () => {
      const runId = randomUUID();
      return { name: 'run', data: { runId }, opts: { jobId: jobId.run(runId), removeOnComplete: true, removeOnFail: true } };
    });
    await rotations.addBulk(batch);
  }
  return async () => (await rotations.getJobCounts('waiting')).waiting ?? 0;
}
