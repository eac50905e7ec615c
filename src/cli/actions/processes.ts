/** What worker, server and dev do (../commands/processes.ts defines them). */
import { join } from 'node:path';
import pino from 'pino';
import { requireDuration } from '../../core/duration.js';
import { loadConfigFile } from '../../config/load.js';
import { migrate } from '../../db/migrate.js';
import { serverRoutes } from '../../http/routes.js';
import { createLogger } from '../../log.js';
import { DEFAULT_WORKER_OPTIONS, type WorkerOptions } from '../../queue/workers.js';
import { Runtime } from '../../runtime.js';
import { loadSettings } from '../../settings.js';
import { applyConfig } from '../apply.js';
import { runDemo } from '../demo.js';
import { startDevInfrastructure } from '../infra.js';
import type { CliContext } from '../context.js';
import { maskUrl } from '../failures.js';
import { serve, stopOnSignals } from '../serve.js';

/** The flags worker and dev share (schedules already checked by their option parsers). */
export interface WorkerFlags {
  concurrency?: number;
  lockDuration: string;
  reconcileInterval: string;
  outboxInterval: string;
  gaugesInterval: string;
}

export async function worker(ctx: CliContext, flags: WorkerFlags & { port: number }): Promise<void> {
  const worker = workerOptions(flags);
  const runtime = new Runtime({ actor: 'worker', modules: ctx.modules, longLived: true, leaseMs: worker.lockDurationMs });
  const serving = await serve(runtime, { port: flags.port, workers: true, routes: [], worker, housekeeping: schedules(flags) });
  await stopOnSignals(serving, runtime);
  process.exit(0);
}

export async function server(ctx: CliContext, flags: { port?: number; gaugesInterval: string }): Promise<void> {
  const runtime = new Runtime({ actor: 'server', modules: ctx.modules, longLived: true });
  const serving = await serve(runtime, { port: flags.port ?? runtime.settings.port, workers: false, routes: serverRoutes, housekeeping: { gauges: flags.gaugesInterval } });
  await stopOnSignals(serving, runtime);
  process.exit(0);
}

export async function dev(ctx: CliContext, flags: WorkerFlags & { port: number; file?: string; embedded?: boolean; demo?: boolean }): Promise<void> {
  // A file that cannot be read or is invalid is refused before anything starts.
  const loaded = flags.file ? await loadConfigFile(flags.file, ctx.modules) : undefined;
  const infra = await startDevInfrastructure(join(process.cwd(), '.rekey'), { embedded: !!flags.embedded, database: flags.demo ? 'rekey_demo' : 'rekey_dev' });
  process.env.REKEY_QUEUE_PREFIX ||= flags.demo ? '{rekey-demo}' : '{rekey-dev}';
  const settings = loadSettings();
  const started = Date.now();
  const applied = await migrate(settings.databaseUrl);
  // The demo prints a timeline; its logs go to a file beside its config.
  const log = flags.demo ? createLogger(process.env.LOG_LEVEL ? settings.logLevel : 'info', pino.destination({ dest: join(process.cwd(), '.rekey', 'demo.log'), sync: true })) : undefined;
  const worker = workerOptions(flags);
  const runtime = new Runtime({ actor: 'dev', modules: ctx.modules, settings, longLived: true, leaseMs: worker.lockDurationMs, ...(log ? { log } : {}) });
  try {
    const serving = await serve(runtime, {
      port: flags.demo ? 0 : flags.port,
      host: '127.0.0.1',
      workers: true,
      routes: serverRoutes,
      worker,
      housekeeping: schedules(flags),
    });
    if (flags.demo) {
      const ok = await runDemo(runtime, { out: ctx.out, serverUrl: serving.url, inspect: inspectHint(infra.ephemeral, settings), notes: [...infra.notes, `migrate: ${applied.length ? applied.join(', ') + ' applied' : 'up to date'}`, `worker + server: ${serving.url} (logs: .rekey/demo.log)`], started });
      await serving.stop();
      await infra.stop();
      // Explicitly: main's exit code would say 0, and a handle left open would keep a failed demo running.
      process.exit(ok ? 0 : 1);
    }
    for (const note of infra.notes) ctx.out(note);
    if (flags.file && loaded) {
      // One refused against the database stops what started: the workers and server would otherwise keep the process running without it.
      await applyConfig(runtime, loaded, { file: flags.file, actor: 'dev', out: ctx.out }).catch(async (error: unknown) => {
        await serving.stop();
        throw error;
      });
    }
    ctx.out(`rekey dev: worker and server on ${serving.url}; Ctrl-C to stop`);
    await stopOnSignals(serving, runtime);
  } finally {
    await infra.stop();
  }
  if (!flags.demo) process.exit(0);
}

/** The command a second terminal copies to look at the demo's state: the same database and queue prefix. */
function inspectHint(ephemeral: boolean, settings: { databaseUrl: string; queuePrefix: string }): string {
  if (ephemeral) return 'Its embedded PostgreSQL and Redis stopped with it; to keep state to inspect, run against your own (DATABASE_URL, REDIS_URL).';
  return `Inspect with: DATABASE_URL='${maskUrl(settings.databaseUrl)}' REKEY_QUEUE_PREFIX='${settings.queuePrefix}' npm run rekey -- status`;
}

function workerOptions(flags: WorkerFlags): WorkerOptions {
  const n = flags.concurrency;
  return {
    ...DEFAULT_WORKER_OPTIONS,
    concurrency: n ? { rotations: n, emergencies: Math.max(1, Math.floor(n / 2)), revocations: n, retirements: Math.max(1, Math.floor(n / 2)) } : DEFAULT_WORKER_OPTIONS.concurrency,
    lockDurationMs: requireDuration(flags.lockDuration, '--lock-duration'),
  };
}

function schedules(flags: WorkerFlags): { reconcile: string; outbox: string; gauges: string } {
  return { reconcile: flags.reconcileInterval, outbox: flags.outboxInterval, gauges: flags.gaugesInterval };
}

