/**
 * Composition root: one Runtime per process wires settings, PostgreSQL, Redis, the
 * queues, the provider resolver, metrics and the engine together.
 */
import { Redis } from 'ioredis';
import type { Logger as PinoLogger } from 'pino';
import { Engine } from './core/engine.js';
import { describeError } from './core/errors.js';
import { createFingerprinter, type Fingerprinter } from './core/fingerprint.js';
import type { AnyProviderModule } from './core/provider.js';
import { type Db, createDb } from './db/client.js';
import { activeSchedules } from './db/config-store.js';
import { PrismaRepository } from './db/repository.js';
import { Metrics } from './http/metrics.js';
import { createLogger } from './log.js';
import { BullQueues } from './queue/queues.js';
import { providers } from './registry.js';
import { ConfigResolver } from './resolver.js';
import { type Settings, loadSettings } from './settings.js';

export interface RuntimeOptions {
  /** Who acts, for the audit log. */
  actor: string;
  settings?: Settings;
  modules?: readonly AnyProviderModule[];
  log?: PinoLogger;
  /** Long-lived processes retry Redis forever; CLI commands give up quickly. */
  longLived?: boolean;
  /** How long a rotation run's lease lasts without renewal (workers: their --lock-duration). */
  leaseMs?: number;
}

export class Runtime {
  readonly settings: Settings;
  readonly log: PinoLogger;
  readonly modules: readonly AnyProviderModule[];
  readonly db: Db;
  readonly redis: Redis;
  readonly queues: BullQueues;
  readonly resolver: ConfigResolver;
  readonly metrics: Metrics;
  readonly engine: Engine;
  private fingerprinter: Fingerprinter | undefined;

  constructor(options: RuntimeOptions) {
    this.settings = options.settings ?? loadSettings();
    this.log = options.log ?? createLogger(this.settings.logLevel);
    this.modules = options.modules ?? providers;
    this.db = createDb(this.settings.databaseUrl, 10, (error) => this.log.warn({ error: describeError(error) }, 'PostgreSQL connection failed'));
    this.redis = new Redis(this.settings.redisUrl, {
      maxRetriesPerRequest: options.longLived ? null : 2,
      lazyConnect: true,
      retryStrategy: (times) => (options.longLived || times < 5 ? Math.min(times * 200, 2000) : null),
    });
    this.redis.on('error', (error) => this.log.debug({ error: describeError(error) }, 'redis connection error'));
    this.queues = new BullQueues(this.redis, this.settings.queuePrefix);
    // Without a listener BullMQ prints a queue's connection errors to stderr as raw stack
    // traces (every reconnect attempt while Redis is down); the client's own are logged above.
    for (const queue of Object.values(this.queues.queues)) queue.on('error', (error) => this.log.debug({ error: describeError(error) }, 'queue connection error'));
    const fingerprint: Fingerprinter = (value) => (this.fingerprinter ??= createFingerprinter(this.settings.fingerprintKey))(value);
    this.resolver = new ConfigResolver({
      db: this.db,
      modules: this.modules,
      log: this.log,
      fingerprint,
      databaseUrl: this.settings.databaseUrl,
      redisUrl: this.settings.redisUrl,
    });
    // A gauge whose source is down is left empty: the rest of /metrics must still answer
    // (a long-lived Redis client queues commands for as long as Redis is away).
    this.metrics = new Metrics({
      versionsByState: () =>
        within(SAMPLE_TIMEOUT_MS, this.db.version.groupBy({ by: ['state'], _count: { _all: true } })).then(
          (rows) => Object.fromEntries(rows.map((r) => [r.state, r._count._all])),
          () => ({}),
        ),
      queueDepth: () => within(SAMPLE_TIMEOUT_MS, this.queues.depth()).catch(() => ({})),
    });
    this.engine = new Engine({
      repo: new PrismaRepository(this.db),
      queue: this.queues,
      providers: this.resolver,
      fingerprint,
      log: this.log,
      events: this.metrics,
      actor: options.actor,
      ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    });
  }

  /** Connects to Redis unless a queue already started the (lazy) connection. */
  async connect(): Promise<void> {
    if (this.redis.status === 'wait') await this.redis.connect();
  }

  /** Fails fast, with the variable's name, when a key this process needs is missing. */
  requireFingerprintKey(): void {
    this.fingerprinter ??= createFingerprinter(this.settings.fingerprintKey);
  }

  /** Re-derives queued work and cron schedules from PostgreSQL. */
  async reconcile(): Promise<void> {
    const schedules = await this.queues.syncSchedules(await activeSchedules(this.db));
    const work = await this.engine.reconcile();
    this.metrics.runsStuck(work.stuck);
    if (schedules.upserted.length || schedules.removed.length) this.log.info({ schedules, work }, 'reconciled');
  }

  /** Readiness: both stores of state answer. */
  async ready(): Promise<{ postgres: boolean; redis: boolean }> {
    const [postgres, redis] = await Promise.all([
      within(SAMPLE_TIMEOUT_MS, this.db.$queryRaw`SELECT 1`).then(() => true, () => false),
      within(SAMPLE_TIMEOUT_MS, this.redis.ping()).then(() => true, () => false),
    ]);
    return { postgres, redis };
  }

  async close(): Promise<void> {
    await this.resolver.close();
    await this.queues.close().catch(() => undefined);
    this.redis.disconnect();
    await this.db.$disconnect();
  }
}

/** How long /readyz and the gauges wait for PostgreSQL or Redis before reporting them down. */
const SAMPLE_TIMEOUT_MS = 2000;

/** Rejects when `promise` has not settled within `ms`. */
function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)));
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
