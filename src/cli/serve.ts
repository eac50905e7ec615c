/**
 * Long-running processes: `rekey worker`, `rekey server`, and both at once in `rekey dev`.
 * SIGTERM/SIGINT drain: stop taking jobs, let in-flight ones finish for up to
 * REKEY_DRAIN_TIMEOUT (the rest return to their queue), close the HTTP server, exit 0.
 */
import type { FastifyInstance } from 'fastify';
import { describeError } from '../core/errors.js';
import { buildServer, type RouteModule } from '../http/server.js';
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
  /** How often reconcile() re-derives queued work from PostgreSQL. @defaultValue 15000 */
  reconcileMs?: number;
}

export interface Serving {
  url: string;
  stop(): Promise<void>;
}

export async function serve(runtime: Runtime, options: ServeOptions): Promise<Serving> {
  await runtime.connect().catch(() => undefined); // retried in the background when Redis is down
  let workers: Workers | undefined;
  let timer: NodeJS.Timeout | undefined;
  if (options.workers) {
    runtime.requireFingerprintKey();
    workers = startWorkers(runtime.engine, runtime.redis, runtime.settings.queuePrefix, runtime.log, options.worker ?? DEFAULT_WORKER_OPTIONS);
    const reconcile = () =>
      runtime.reconcile().catch((error: unknown) => runtime.log.warn({ error: describeError(error) }, 'reconcile failed; will retry'));
    await reconcile();
    timer = setInterval(() => void reconcile(), options.reconcileMs ?? 15_000);
    // After Redis comes back (a restart loses the queues when it keeps nothing on disk), rebuild at once.
    runtime.redis.on('ready', () => void reconcile());
  }
  const app: FastifyInstance = await buildServer(runtime, options.routes);
  const url = await app.listen({ host: options.host ?? '0.0.0.0', port: options.port });
  runtime.log.info({ url, workers: options.workers }, 'rekey started');
  let stopping: Promise<void> | undefined;
  return {
    url,
    stop: () =>
      (stopping ??= (async () => {
        const started = Date.now();
        clearInterval(timer);
        await workers?.close(runtime.settings.drainTimeoutMs);
        const drained = Date.now();
        await app.close();
        await runtime.close();
        runtime.log.info({ drainMs: drained - started, closeMs: Date.now() - drained }, 'stopped');
      })()),
  };
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
