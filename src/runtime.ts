/**
 * Composition root: one Runtime per process wires settings, PostgreSQL, Redis, the
 * queues, the provider resolver, metrics and the engine together.
 */
import type { Logger as PinoLogger } from 'pino';
import { Engine } from './core/engine.js';
import { describeError, RekeyError } from './core/errors.js';
import { createFingerprinter, type Fingerprinter } from './core/fingerprint.js';
import type { ProviderCatalog } from './core/provider.js';
import { AuditLog } from './db/audit.js';
import { type Db, createDb, writable } from './db/client.js';
import type { RekeyConfig } from './config/schema.js';
import { PrismaRepository } from './db/repository.js';
import { OutboxNotifier, outboxBacklog } from './db/outbox.js';
import { PrismaSyncRepository } from './db/sync.js';
import { ChangeFeed } from './delivery/change-feed.js';
import { TargetSchedule } from './target-schedule.js';
import { UsageMonitor } from './core/usage.js';
import { PrismaUsageRepository } from './db/usage.js';
import { Metrics } from './metrics.js';
import { Housekeeping } from './housekeeping.js';
import { NoticeQueue } from './notify/queue.js';
import { createLogger } from './log.js';
import { openRedis, type RedisConnection } from './queue/connection.js';
import { Heartbeats } from './queue/heartbeats.js';
import { BullQueues } from './queue/queues.js';
import { ReconcilePasses } from './reconcile-passes.js';
import { providers } from './registry.js';
import { ConfigResolver } from './resolver.js';
import { type Settings, loadSettings } from './settings.js';

export interface RuntimeOptions {
  /** Who acts, for the audit log. */
  actor: string;
  settings?: Settings;
  /** The providers configs may use. @defaultValue the registry's */
  modules?: ProviderCatalog;
  log?: PinoLogger;
  /** Long-lived processes retry Redis forever and keep their idle PostgreSQL connections; CLI commands give up quickly. */
  longLived?: boolean;
  /** How long a rotation run's lease lasts without renewal (workers: their --lock-duration). */
  leaseMs?: number;
}

export class Runtime {
  /** Who acts, for the audit log (src/api/actors.ts). */
  readonly actor: string;
  readonly settings: Settings;
  readonly log: PinoLogger;
  readonly modules: ProviderCatalog;
  readonly db: Db;
  /** The audit log, keyed by REKEY_AUDIT_KEY. */
  readonly audit: AuditLog;
  readonly redis: RedisConnection;
  readonly queues: BullQueues;
  /** Alerts for people: the engine's Notifier, on the notification outbox (src/db/outbox.ts). */
  readonly notifier: OutboxNotifier;
  /** The `notifications` queue the outbox relay fills and the notifications worker drains (src/notify). */
  readonly notices: NoticeQueue;
  /** Worker processes' last signs of life (src/queue/heartbeats.ts). */
  readonly heartbeats: Heartbeats;
  readonly resolver: ConfigResolver;
  readonly metrics: Metrics;
  readonly engine: Engine;
  /** Per-process timers (reconcile, gauges, key refreshes); nothing runs until a job is scheduled. */
  readonly housekeeping: Housekeeping;
  /** The drift checks of every target (src/target-schedule.ts); `rekey worker` runs them on housekeeping. */
  readonly drift: TargetSchedule;
  /** The usage checks of targets with `usage:` on their providers: entry (src/core/usage.ts); `rekey worker` runs them on housekeeping. */
  readonly usage: TargetSchedule;
  /** Secret changes for delivery clients, across every process (Redis pub/sub). */
  readonly changes: ChangeFeed;
  private fingerprinter: Fingerprinter | undefined;
  private readonly reconciler: ReconcilePasses;

  constructor(options: RuntimeOptions) {
    this.actor = options.actor;
    this.settings = options.settings ?? loadSettings();
    this.log = options.log ?? createLogger(this.settings.logLevel);
    this.modules = options.modules ?? providers;
    this.housekeeping = new Housekeeping(this.log);
    this.audit = new AuditLog(this.settings.auditKey);
    // A long-lived process keeps its connections (and their planned statements) between bursts of work.
    this.db = createDb(this.settings.databaseUrl, 10, (error) => this.log.warn({ error: describeError(error) }, 'PostgreSQL connection failed'), { idleTimeoutMs: options.longLived ? 0 : undefined });
    this.redis = openRedis(this.settings.redis, { longLived: options.longLived ?? false });
    this.redis.on('error', (error) => this.log.debug({ error: describeError(error) }, 'redis connection error'));
    this.queues = new BullQueues(this.redis, this.settings.queuePrefix);
    this.heartbeats = new Heartbeats(this.redis, this.settings.queuePrefix);
    // Without a listener BullMQ prints a queue's connection errors to stderr as raw stack
    // traces (every reconnect attempt while Redis is down); the client's own are logged above.
    this.notifier = new OutboxNotifier(this.db);
    this.notices = new NoticeQueue(this.redis, this.settings.queuePrefix, () => this.applied('notifications'));
    for (const queue of [...Object.values(this.queues.queues), this.notices.queue]) queue.on('error', (error) => this.log.debug({ error: describeError(error) }, 'queue connection error'));
    const fingerprint: Fingerprinter = (value) => (this.fingerprinter ??= createFingerprinter(this.settings.fingerprintKey))(value);
    const repo = new PrismaRepository(this.db, this.audit);
    this.resolver = new ConfigResolver({
      db: this.db,
      repo,
      modules: this.modules,
      log: this.log,
      fingerprint,
      databaseUrl: this.settings.databaseUrl,
      redis: this.settings.redis,
      storeKey: this.settings.localStoreKey,
    });
    // A gauge whose source is down is left empty: the rest of /metrics must still answer
    // (a long-lived Redis client queues commands for as long as Redis is away).
    this.metrics = new Metrics({
      versionsByState: () =>
        within(SAMPLE_TIMEOUT_MS, this.db.version.groupBy({ by: ['state'], _count: { _all: true } })).then(
          (rows) => Object.fromEntries(rows.map((r) => [r.state, r._count._all])),
          () => ({}),
        ),
      queueDepth: () =>
        within(SAMPLE_TIMEOUT_MS, Promise.all([this.queues.depth(), this.notices.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed')])).then(
          ([depth, notifications]) => ({ ...depth, [this.notices.queue.name]: notifications }),
          () => ({}),
        ),
      outbox: () => within(SAMPLE_TIMEOUT_MS, outboxBacklog(this.db)).catch(() => null),
    });
    this.changes = new ChangeFeed(this.redis, this.settings.redis, this.settings.queuePrefix, this.log);
    this.engine = new Engine({
      repo,
      queue: this.queues,
      sync: new PrismaSyncRepository(this.db, this.audit),
      providers: this.resolver,
      fingerprint,
      log: this.log,
      events: this.metrics,
      notifier: this.notifier,
      announce: (change) => void this.changes.publish(change).catch((error: unknown) => this.log.warn({ secret: change.secret, error: describeError(error) }, 'could not publish a change for delivery clients')),
      actor: options.actor,
      ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    });
    const { queuePrefix: prefix, anchorEveryMs } = this.settings;
    this.reconciler = new ReconcilePasses({ db: this.db, redis: this.redis, queues: this.queues, engine: this.engine, metrics: this.metrics, log: this.log.child({ component: 'reconcile' }), prefix, anchorEveryMs });
    // Redis may have come back empty: the next pass re-derives everything.
    this.redis.on('ready', () => this.reconciler.forgetWatermark());
    const scheduled = { resolver: this.resolver, db: this.db, log: this.log };
    this.drift = new TargetSchedule({
      ...scheduled,
      component: 'drift',
      interval: (spec) => spec.driftIntervalMs,
      orphanIntervalMs: DRIFT_ORPHAN_INTERVAL_MS,
      slice: DRIFT_SLICE,
      run: (target, secrets, _intervalMs, periodMs) => this.engine.checkTarget(target, secrets, { repair: true, periodMs }),
    });
    const monitor = new UsageMonitor(this.engine.deps, new PrismaUsageRepository(this.db, this.audit));
    this.usage = new TargetSchedule({
      ...scheduled,
      component: 'usage',
      interval: (spec) => spec.usageIntervalMs,
      orphanIntervalMs: undefined,
      run: (target, secrets, intervalMs) => monitor.check(target, secrets, intervalMs),
    });
  }

  /** Connects to Redis unless a queue already started the (lazy) connection. */
  async connect(): Promise<void> {
    if (this.redis.status === 'wait') await this.redis.connect();
  }

  /** Fails fast, with the variable's name, when a key this process needs is missing (fingerprints, the audit chain). */
  requireKeys(): void {
    this.fingerprinter ??= createFingerprinter(this.settings.fingerprintKey);
    this.audit.requireKey();
  }

  /**
   * Re-derives queued work and cron schedules from PostgreSQL: all of it, or with
   * `incremental` what changed since this process's last pass (src/reconcile-passes.ts).
   */
  reconcile(options?: { incremental?: boolean }): Promise<void> {
    return this.reconciler.run(options);
  }

  /** A section of the applied config: undefined when it has none, or before any config is applied (a leak report may come first). */
  async applied<K extends 'notifications' | 'dashboard'>(section: K): Promise<RekeyConfig[K]> {
    try {
      return (await this.resolver.config())[section];
    } catch (error) {
      if (error instanceof RekeyError && error.code === 'REKEY_ERR_CONFIG' && !(await this.db.configRevision.count())) return undefined;
      throw error;
    }
  }

  /**
   * Readiness: both stores of state answer, and PostgreSQL takes writes. A server that refuses
   * them (a standby, a primary demoted by a failover while the front still routes to it) leaves
   * the process not ready, and the connection is dropped (writable()), so the next probe goes
   * through the front afresh.
   */
  async ready(): Promise<{ postgres: boolean; redis: boolean }> {
    const [postgres, redis] = await Promise.all([
      within(SAMPLE_TIMEOUT_MS, writable(this.db)).then((yes) => yes, () => false),
      within(SAMPLE_TIMEOUT_MS, this.redis.ping()).then(() => true, () => false),
    ]);
    return { postgres, redis };
  }

  async close(): Promise<void> {
    await this.housekeeping.stop();
    await this.drift.stop();
    await this.usage.stop();
    await this.resolver.close();
    await this.queues.close().catch(() => undefined);
    await this.notices.close().catch(() => undefined);
    await this.changes.close();
    this.redis.disconnect();
    await this.db.$disconnect();
  }
}

/** How long /readyz and the gauges wait for PostgreSQL or Redis before reporting them down. */
const SAMPLE_TIMEOUT_MS = 2000;
/** Targets named by no applied config any more (a removed secret's) are drift-checked this often. */
const DRIFT_ORPHAN_INTERVAL_MS = 30_000;
/** Secrets per periodic drift check of one target (docs/scale.md): a check costs the same at 100,000 secrets as at 1,000. */
const DRIFT_SLICE = 1000;

/** Rejects when `promise` has not settled within `ms`. */
function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)));
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
