/**
 * Long-running processes: `rekey worker`, `rekey server`, and both at once in `rekey dev`.
 * SIGTERM/SIGINT drain: stop taking jobs, let in-flight ones finish for up to
 * REKEY_DRAIN_TIMEOUT (the rest return to their queue), close the HTTP server, exit 0.
 */
import { purgeIdempotency } from '../api/idempotency.js';
import { hostname } from 'node:os';
import type { Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { fullWalkDue, LastAnchor, recordAnchor } from '../audit-anchor.js';
import { describeError, RekeyError } from '../core/errors.js';
import { pendingMigrations } from '../db/migrate.js';
import { retryRotationMetadata } from '../events/rotation-metadata.js';
import { buildMetricsServer, buildServer, type RouteModule } from '../http/server.js';
import { raiseRotationsDue } from '../notify/due.js';
import { startNotificationWorker } from '../notify/worker.js';
import { HEARTBEAT_EVERY } from '../queue/heartbeats.js';
import { DEFAULT_WORKER_OPTIONS, startWorkers, type WorkerOptions, type Workers } from '../queue/workers.js';
import type { Runtime } from '../runtime.js';

export interface ServeOptions {
  port: number;
  host?: string;
  worker?: WorkerOptions;
  /** Run the queue workers (and the reconciler). */
  workers: boolean;
  /** Serve the receivers (webhooks, Pub/Sub push) besides health and metrics. */
  routes: readonly RouteModule[];
  /**
   * Housekeeping schedules (cron expressions or even durations, see housekeepingCron()):
   * when reconcile() re-derives queued work from PostgreSQL (workers only), when the outbox
   * relay queues waiting notices (workers only), and when the gauges of /metrics are sampled.
   * @defaultValue `{ reconcile: '15s', outbox: '1s', gauges: '15s' }`
   */
  housekeeping?: { reconcile?: string; outbox?: string; gauges?: string };
}

export interface Serving {
  url: string;
  /** Where /metrics is served when REKEY_METRICS_PORT gives it a port of its own. */
  metricsUrl?: string;
  stop(): Promise<void>;
}

/**
 * Starts a long-lived process. Everything that can be wrong before it runs is checked
 * first, so a misconfigured process exits at once instead of half-running (workers busy
 * with no health endpoint): the fingerprint and audit keys, a database schema older than the code,
 * the HTTP port (listened on before any worker starts).
 * @throws RekeyError REKEY_ERR_CONFIG for each of those, after closing what it opened.
 */
export async function serve(runtime: Runtime, options: ServeOptions): Promise<Serving> {
  try {
    runtime.requireKeys();
  } catch (error) {
    await runtime.close();
    throw error;
  }
  await requireCurrentSchema(runtime);
  let app: FastifyInstance | undefined;
  let metricsApp: FastifyInstance | undefined;
  let url: string;
  let metricsUrl: string | undefined;
  const host = options.host ?? '0.0.0.0';
  const { metricsPort } = runtime.settings;
  let listening = options.port;
  try {
    app = await buildServer(runtime, options.routes, { metrics: metricsPort === undefined });
    url = await app.listen({ host, port: options.port });
    if (metricsPort !== undefined) {
      listening = metricsPort;
      metricsApp = buildMetricsServer(runtime);
      metricsUrl = await metricsApp.listen({ host, port: metricsPort });
    }
  } catch (error) {
    await metricsApp?.close();
    await app?.close();
    await runtime.close();
    const code = (error as { code?: string }).code;
    const flag = listening === options.port ? '--port' : 'REKEY_METRICS_PORT';
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new RekeyError('REKEY_ERR_CONFIG', `cannot listen on ${host}:${listening} (${code}): ${code === 'EADDRINUSE' ? `another process uses the port; pick another with ${flag}` : `pick another port with ${flag}`}`);
    }
    throw error;
  }
  await runtime.connect().catch(() => undefined); // retried in the background when Redis is down
  let workers: Workers | undefined;
  let notifications: Worker | undefined;
  const { housekeeping } = runtime;
  if (options.workers) {
    notifications = startNotificationWorker({ connection: runtime.redis, prefix: runtime.settings.queuePrefix, notices: runtime.notices, log: runtime.log, metrics: runtime.metrics });
    // Notices committed to the outbox (by any process) go to the queue; relays of several workers share the rows.
    housekeeping.schedule({ name: 'notification-outbox', schedule: options.housekeeping?.outbox ?? '1s', run: async () => void (await runtime.notices.relay(runtime.db)) });
    // rotation.due for secrets without a schedule (notifications.rotationDue); one notice per version however many replicas check.
    housekeeping.schedule({ name: 'rotation-due', schedule: '1h', run: async () => void (await raiseRotationsDue({ db: runtime.db, resolver: runtime.resolver, notifier: runtime.notifier })) });
    const last = new LastAnchor(runtime.redis, runtime.settings.queuePrefix);
    const { anchorEveryMs } = runtime.settings;
    const anchor = () =>
      recordAnchor({ db: runtime.db, audit: runtime.audit, log: runtime.log, actor: 'worker', webhook: runtime.settings.anchorWebhook, notifier: runtime.notifier, last, walk: fullWalkDue(Date.now(), anchorEveryMs) ? 'full' : 'since' });
    workers = startWorkers(runtime.engine, runtime.redis, runtime.settings.queuePrefix, runtime.log, options.worker ?? DEFAULT_WORKER_OPTIONS, { anchor });
    housekeeping.schedule({ name: 'reconcile', schedule: options.housekeeping?.reconcile ?? '15s', run: () => runtime.reconcile({ incremental: true }) });
    await housekeeping.runNow('reconcile');
    // After Redis comes back (a restart loses the queues when it keeps nothing on disk), rebuild at once.
    runtime.redis.on('ready', () => void housekeeping.runNow('reconcile'));
    // Each target's drift check at its own interval (drift.interval on its providers: entry).
    housekeeping.schedule({ name: 'drift', schedule: '1s', run: () => runtime.drift.tick() });
    // Each usage source's check at its own interval (usage.interval on its providers: entry).
    housekeeping.schedule({ name: 'usage', schedule: '1s', run: () => runtime.usage.tick() });
    // Rotation metadata an apply could not write to a store (src/events/rotation-metadata.ts).
    housekeeping.schedule({ name: 'rotation-metadata', schedule: '1m', run: () => retryRotationMetadata(runtime.db, runtime.resolver, runtime.log) });
    // So `rekey rotate --wait` can tell "no worker running" from "workers busy".
    const worker = `${hostname()}:${process.pid}`;
    housekeeping.schedule({ name: 'heartbeat', schedule: HEARTBEAT_EVERY, run: () => runtime.heartbeats.beat(worker), immediately: true });
  }
  // Admin API answers kept for Idempotency-Key replays, past their 24 hours.
  housekeeping.schedule({ name: 'idempotency-purge', schedule: '1h', run: async () => void (await purgeIdempotency(runtime.db)) });
  housekeeping.schedule({ name: 'gauges', schedule: options.housekeeping?.gauges ?? '15s', run: () => runtime.metrics.sampleGauges(), immediately: true });
  runtime.log.info({ url, metricsUrl, workers: options.workers }, 'rekey started');
  let stopping: Promise<void> | undefined;
  return {
    url,
    ...(metricsUrl ? { metricsUrl } : {}),
    stop: () =>
      (stopping ??= (async () => {
        const started = Date.now();
        // Each part says when it has stopped (debug): a stop that hangs shows which part it waits for.
        const stopped = async (part: string, stop: Promise<unknown> | undefined) => {
          await stop;
          runtime.log.debug({ part, ms: Date.now() - started }, 'stopping: part stopped');
        };
        await stopped('housekeeping', housekeeping.stop());
        // A drift or usage check may be waiting out a provider call's timeout: the workers drain meanwhile, not after it.
        await Promise.all([
          stopped('drift', runtime.drift.stop()),
          stopped('usage', runtime.usage.stop()),
          stopped('workers', workers?.close(runtime.settings.drainTimeoutMs)),
          stopped('notifications', notifications?.close()),
        ]);
        const drained = Date.now();
        await stopped('http', app.close());
        await stopped('metrics', metricsApp?.close());
        await stopped('runtime', runtime.close());
        runtime.log.info({ drainMs: drained - started, closeMs: Date.now() - drained }, 'stopped');
      })()),
  };
}

/** Refuses to run code newer than the database: its queries would fail later, one job at a time. */
async function requireCurrentSchema(runtime: Runtime): Promise<void> {
  // An unreachable database is not fatal here: /readyz says so and the process waits for it.
  const pending = await pendingMigrations(runtime.settings.databaseUrl).catch(() => []);
  if (!pending.length) return;
  await runtime.close();
  throw new RekeyError('REKEY_ERR_CONFIG', `the database schema is older than this rekey: ${pending.length} migration(s) not applied (${pending.at(-1)}); run \`rekey migrate\` first`);
}

/**
 * Runs until SIGTERM or SIGINT, then drains. The caller exits the process afterwards:
 * a job abandoned at the drain timeout may still hold timers that would keep it alive.
 */
export function stopOnSignals(serving: Serving, runtime: Runtime): Promise<void> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      runtime.log.info({ signal }, 'draining');
      void serving.stop().then(resolve, (error: unknown) => {
        runtime.log.error({ error: describeError(error) }, 'shutdown failed');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
