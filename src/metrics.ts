/**
 * Prometheus metrics. Counters and histograms are per process (each worker exposes its
 * own on --port); gauges are sampled from PostgreSQL and Redis by the housekeeping job
 * `gauges` (sampleGauges(), every 15 s by default), so any process reports the same truth
 * and a flood of scrapes costs no query. Labels never carry a secret value or token.
 */
import client from 'prom-client';
import type { EngineEvents, RunKind, RunStatus } from './core/model.js';
import type { StoreFinding } from './core/sync.js';

export interface GaugeSources {
  versionsByState(): Promise<Record<string, number>>;
  queueDepth(): Promise<Record<string, Record<string, number>>>;
  /** Notices committed and not yet queued by a relay (src/db/outbox.ts); null while PostgreSQL is away. */
  outbox(): Promise<OutboxBacklog | null>;
}

export interface OutboxBacklog {
  rows: number;
  /** Age of the oldest waiting notice; 0 when none waits. */
  oldestSeconds: number;
}

export class Metrics implements EngineEvents {
  readonly registry = new client.Registry();
  private readonly rotations = new client.Counter({
    name: 'rekey_rotations_total',
    help: 'Rotation runs finished, by result (succeeded, rolled_back, failed) and trigger',
    labelNames: ['result', 'trigger'],
    registers: [this.registry],
  });
  private readonly runs = new client.Histogram({
    name: 'rekey_run_duration_seconds',
    help: 'Run duration from start to finish, by kind (rotation, retirement, revocation)',
    labelNames: ['kind'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  private readonly skipped = new client.Counter({
    name: 'rekey_triggers_skipped_total',
    help: 'Rotation triggers that made no new run: stale (older than the last rotation) or busy (joined a running one)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  private readonly stuck = new client.Gauge({
    name: 'rekey_runs_stuck',
    help: "Runs past their retry budget at the last reconcile (still retried; see `rekey status`)",
    registers: [this.registry],
  });
  private readonly emergencyRetries = new client.Counter({
    name: 'rekey_emergency_rotation_retries_total',
    help: 'Emergency rotations (replacing a leaked key) that rolled their version back and started over with a fresh one; alert on any increase',
    registers: [this.registry],
  });
  readonly leakToBlocked = new client.Histogram({
    name: 'rekey_leak_to_blocked_seconds',
    help: 'From a leak report received to the version retired at every target',
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [this.registry],
  });

  private readonly providerCalls = new client.Counter({
    name: 'rekey_provider_calls_total',
    help: 'Provider calls by provider instance, operation (store.promote, target.deploy, ...) and outcome (ok, or the error code: timeout, unavailable, denied, ...)',
    labelNames: ['provider', 'op', 'outcome'],
    registers: [this.registry],
  });
  private readonly providerCallSeconds = new client.Histogram({
    name: 'rekey_provider_call_duration_seconds',
    help: 'Provider call duration, by provider instance and operation',
    labelNames: ['provider', 'op'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly drift = new client.Counter({
    name: 'rekey_target_drift_total',
    help: 'Drift found by the drift check: versions missing at a target (kind=missing) or still held although retired or leaked (kind=unwanted)',
    labelNames: ['target', 'kind'],
    registers: [this.registry],
  });
  private readonly storeDrifts = new client.Counter({
    name: 'rekey_store_drift_total',
    help: "Store checks that found a store's current stage on another version than rekey's current: on one rekey took out of service (found=not-live), another live one (live), one rekey does not know (unknown), none (none); repaired=true when rekey gave the stage back",
    labelNames: ['store', 'found', 'repaired'],
    registers: [this.registry],
  });
  private readonly notices = new client.Counter({
    name: 'rekey_notifications_total',
    help: 'Notification deliveries, by destination, event and outcome (delivered, retrying, given_up, dropped)',
    labelNames: ['destination', 'event', 'outcome'],
    registers: [this.registry],
  });
  /** The last sample of each gauge; empty before the first one and while its source is down. */
  private sampled: { versionsByState: Record<string, number>; queueDepth: Record<string, Record<string, number>>; outbox: OutboxBacklog | null } = {
    versionsByState: {},
    queueDepth: {},
    outbox: null,
  };

  constructor(private readonly sources?: GaugeSources) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'rekey_process_' });
    if (!sources) return;
    const sampled = () => this.sampled;
    new client.Gauge({
      name: 'rekey_versions',
      help: 'Versions by lifecycle state',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [state, count] of Object.entries(sampled().versionsByState)) this.set({ state }, count);
      },
    });
    new client.Gauge({
      name: 'rekey_queue_jobs',
      help: 'Jobs per queue and state (waiting, active, delayed, failed)',
      labelNames: ['queue', 'state'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [queue, counts] of Object.entries(sampled().queueDepth)) {
          for (const [state, count] of Object.entries(counts)) this.set({ queue, state }, count);
        }
      },
    });
    // A relay that stopped (no worker running, or one failing to reach Redis) shows as a growing age.
    for (const [name, help, pick] of [
      ['rekey_notification_outbox_rows', 'Notices committed to the outbox and not yet queued for delivery by a worker', (b: OutboxBacklog) => b.rows],
      ['rekey_notification_outbox_oldest_seconds', 'Age of the oldest notice waiting in the outbox (0 when none waits); alert when it grows past a few relay intervals', (b: OutboxBacklog) => b.oldestSeconds],
    ] as const) {
      new client.Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          const backlog = sampled().outbox;
          if (backlog) this.set(pick(backlog));
        },
      });
    }
  }

  /** Reads every gauge's source once; the next scrapes report what it read. */
  async sampleGauges(): Promise<void> {
    if (!this.sources) return;
    const [versionsByState, queueDepth, outbox] = await Promise.all([this.sources.versionsByState(), this.sources.queueDepth(), this.sources.outbox()]);
    this.sampled = { versionsByState, queueDepth, outbox };
  }

  runFinished(kind: RunKind, status: RunStatus, trigger: string, seconds: number): void {
    if (kind === 'rotation') this.rotations.inc({ result: status, trigger });
    this.runs.observe({ kind }, seconds);
  }

  triggerSkipped(reason: 'stale' | 'busy'): void {
    this.skipped.inc({ reason });
  }

  runsStuck(count: number): void {
    this.stuck.set(count);
  }

  leakBlocked(seconds: number): void {
    this.leakToBlocked.observe(seconds);
  }

  emergencyRetried(): void {
    this.emergencyRetries.inc();
  }

  providerCalled(provider: string, op: string, outcome: string, seconds: number): void {
    this.providerCalls.inc({ provider, op, outcome });
    this.providerCallSeconds.observe({ provider, op }, seconds);
  }

  targetDrift(target: string, kind: 'missing' | 'unwanted', count: number): void {
    this.drift.inc({ target, kind }, count);
  }

  storeDrift(store: string, found: Exclude<StoreFinding, 'in-sync'>, repaired: boolean): void {
    this.storeDrifts.inc({ store, found, repaired: String(repaired) });
  }

  /** One try at delivering a notice (src/notify/worker.ts). */
  notificationTried(destination: string, event: string, outcome: 'delivered' | 'retrying' | 'given_up' | 'dropped'): void {
    this.notices.inc({ destination, event, outcome });
  }
}

/**
 * The counter `name` in `registry`, created on first use: a registry refuses a second metric
 * of one name, and routes may be registered more than once (tests, a reloaded server).
 */
export function sharedCounter<L extends string>(registry: client.Registry, name: string, help: string, labelNames: readonly L[]): client.Counter<L> {
  return (registry.getSingleMetric(name) as client.Counter<L> | undefined) ?? new client.Counter({ name, help, labelNames, registers: [registry] });
}
