/**
 * Faults at random: one at a time, each kind at least once per round (a shuffled round of
 * every kind, then the next), with random pauses between them and random durations.
 */
import type { Fleet } from './fleet.js';
import type { RuntimeApiProxy } from './proxy.js';
import type { OwnPostgres } from '../../test/support/own-services.js';
import type { RedisSentinelSet } from '../../test/support/redis-ha.js';
import { FAULT_KINDS, type Fault, type FaultKind, type SoakState, sleep } from './state.js';

export interface FaultTargets {
  fleet: Fleet;
  redis: RedisSentinelSet;
  postgres: OwnPostgres;
  proxy: RuntimeApiProxy;
}

const between = (min: number, max: number) => min + Math.random() * (max - min);

export class FaultInjector {
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly s: SoakState,
    private readonly t: FaultTargets,
    private readonly pauseMs: [number, number],
  ) {}

  start(): void {
    this.loop = (async () => {
      let round: FaultKind[] = [];
      while (!this.stopped) {
        await sleep(between(...this.pauseMs));
        if (this.stopped) break;
        if (!round.length) round = shuffle([...FAULT_KINDS]);
        await this.inject(round.shift()!).catch((error: unknown) => {
          console.log(`  fault injection failed: ${(error as Error).stack}`);
        });
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async inject(kind: FaultKind): Promise<void> {
    const fault: Fault = { kind, start: Date.now(), end: undefined, detail: '' };
    this.s.faults.push(fault);
    const { fleet, redis, postgres, proxy } = this.t;
    switch (kind) {
      case 'kill-worker': {
        const worker = fleet.workers[Math.floor(Math.random() * fleet.workers.length)]!;
        await worker.kill('SIGKILL');
        fault.detail = worker.name;
        await sleep(between(200, 2000));
        await worker.start();
        break;
      }
      case 'stall-worker': {
        // Frozen past its lease and BullMQ's lock (both --lock-duration): another worker's stalled-job
        // check takes its jobs and drives their runs once their leases ran out. Woken, it resumes
        // mid-step where it froze (its timeouts fire at once), and its late writes (store.promote,
        // step records, deliveries, rollbacks) race its successors'.
        const worker = fleet.workers[Math.floor(Math.random() * fleet.workers.length)]!;
        if (!fleet.workers.some((w) => w !== worker && w.alive)) throw new Error(`no worker but ${worker.name} is up to take its runs over`);
        const ms = between(2, 3) * this.s.config.lockDurationMs;
        fault.detail = `${worker.name} for ${Math.round(ms)} ms`;
        await worker.freeze(ms);
        break;
      }
      case 'kill-server': {
        await fleet.server.kill('SIGKILL');
        await sleep(between(200, 2000));
        await fleet.server.start();
        break;
      }
      case 'redis-restart': {
        // The primary, back empty before the sentinels call it down (nothing on disk; its
        // replica resyncs to nothing): every queue, job, lock and scheduler is gone after this.
        const primary = await redis.primary();
        await primary.kill('SIGKILL');
        await sleep(between(500, Math.min(3000, redis.downAfterMs / 2)));
        await primary.start();
        await redis.settled(120_000);
        break;
      }
      case 'redis-failover': {
        // The primary killed for good: the sentinels promote the replica; the killed node comes
        // back empty and the sentinels make it the new primary's replica.
        const old = await redis.primary();
        const replica = redis.data.find((n) => n !== old)!;
        await old.kill('SIGKILL');
        const named = (await redis.announced(replica, 120_000)) - performance.now() + Date.now();
        fault.detail = `${old.port} -> ${replica.port}, named after ${((named - fault.start) / 1000).toFixed(1)} s`;
        await old.start();
        await redis.settled(120_000);
        break;
      }
      case 'postgres-restart': {
        // Alternate a fast shutdown (sessions ended, transactions rolled back) and a crash.
        const signal = Math.random() < 0.5 ? 'SIGINT' : 'SIGQUIT';
        fault.detail = signal === 'SIGINT' ? 'fast shutdown' : 'immediate (crash recovery)';
        await postgres.kill(signal);
        await sleep(between(500, 3000));
        await postgres.start();
        break;
      }
      case 'runtime-api-refused': {
        const ms = between(2000, 6000);
        fault.detail = `${Math.round(ms)} ms`;
        await proxy.set({ kind: 'refuse' });
        await sleep(ms);
        await proxy.set({ kind: 'pass' });
        break;
      }
      case 'runtime-api-slow': {
        // Past the provider timeout (the secrets' timeout and the haproxy provider's own).
        const ms = between(3000, 8000);
        const delay = Math.round(this.s.config.timeoutMs * 1.5);
        fault.detail = `${delay} ms per connection for ${Math.round(ms)} ms`;
        await proxy.set({ kind: 'delay', ms: delay });
        await sleep(ms);
        await proxy.set({ kind: 'pass' });
        break;
      }
    }
    fault.end = Date.now();
    console.log(`  fault ${kind}${fault.detail ? ` (${fault.detail})` : ''}: ${((fault.end - fault.start) / 1000).toFixed(1)} s`);
  }
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
