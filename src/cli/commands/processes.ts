/** worker, server, dev. */
import { join } from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import { requireDuration } from '../../core/duration.js';
import { RekeyError } from '../../core/errors.js';
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
import type { CliContext } from '../main.js';
import { serve, stopOnSignals } from '../serve.js';

interface WorkerFlags {
  port: string;
  concurrency?: string;
  lockDuration: string;
  reconcileInterval: string;
}

export function registerProcessCommands(program: Command, ctx: CliContext): void {
  const workerFlags = (command: Command) =>
    command
      .option('--concurrency <n>', 'jobs at once per queue (retirements get half)')
      .option('--lock-duration <duration>', "a killed worker's jobs restart after this long", '30s')
      .option('--reconcile-interval <duration>', 'how often queued work is re-derived from PostgreSQL', '15s');

  workerFlags(program.command('worker').description('Run the rotation, revocation and retirement workers (health and metrics on --port)'))
    .option('--port <port>', 'port for /healthz, /readyz, /metrics', '9464')
    .action(async (flags: WorkerFlags) => {
      const worker = workerOptions(flags);
      const runtime = new Runtime({ actor: 'worker', modules: ctx.modules, longLived: true, leaseMs: worker.lockDurationMs });
      const serving = await serve(runtime, { port: port(flags.port), workers: true, routes: [], worker, reconcileMs: requireDuration(flags.reconcileInterval, '--reconcile-interval') });
      await stopOnSignals(serving, runtime);
      process.exit(0);
    });

  program
    .command('server')
    .description('Serve webhooks, Pub/Sub push, /healthz, /readyz and /metrics')
    .option('--port <port>', 'listen port (default: PORT or 8080)')
    .action(async (flags: { port?: string }) => {
      const runtime = new Runtime({ actor: 'server', modules: ctx.modules, longLived: true });
      runtime.requireFingerprintKey();
      const serving = await serve(runtime, { port: flags.port ? port(flags.port) : runtime.settings.port, workers: false, routes: serverRoutes });
      await stopOnSignals(serving, runtime);
      process.exit(0);
    });

  workerFlags(program.command('dev').description('Everything in one process on local defaults (auto-started PostgreSQL and Redis when none is running)'))
    .option('-f, --file <path>', 'apply this rekey.yaml at start')
    .option('--port <port>', 'HTTP port', '8080')
    .option('--embedded', 'always use embedded PostgreSQL and a private redis-server')
    .option('--demo', 'run the demo scenario end to end, print its timeline, and exit')
    .action(async (flags: WorkerFlags & { file?: string; port: string; embedded?: boolean; demo?: boolean }) => {
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
          port: flags.demo ? 0 : port(flags.port),
          host: '127.0.0.1',
          workers: true,
          routes: serverRoutes,
          worker,
          reconcileMs: requireDuration(flags.reconcileInterval, '--reconcile-interval'),
        });
        if (flags.demo) {
          const ok = await runDemo(runtime, { out: ctx.out, notes: [...infra.notes, `migrate: ${applied.length ? applied.join(', ') + ' applied' : 'up to date'}`, `worker + server: ${serving.url} (logs: .rekey/demo.log)`], started });
          await serving.stop();
          if (!ok) process.exitCode = 1;
          return;
        }
        for (const note of infra.notes) ctx.out(note);
        if (flags.file) await applyConfig(runtime, await loadConfigFile(flags.file, ctx.modules), { file: flags.file, actor: 'dev', out: ctx.out });
        ctx.out(`rekey dev: worker and server on ${serving.url}; Ctrl-C to stop`);
        await stopOnSignals(serving, runtime);
      } finally {
        await infra.stop();
      }
      if (!flags.demo) process.exit(0);
    });
}

function workerOptions(flags: WorkerFlags): WorkerOptions {
  const n = flags.concurrency === undefined ? undefined : Number(flags.concurrency);
  if (n !== undefined && (!Number.isInteger(n) || n < 1)) throw new RekeyError('REKEY_ERR_CONFIG', '--concurrency must be a positive integer');
  return {
    ...DEFAULT_WORKER_OPTIONS,
    concurrency: n ? { rotations: n, revocations: n, retirements: Math.max(1, Math.floor(n / 2)) } : DEFAULT_WORKER_OPTIONS.concurrency,
    lockDurationMs: requireDuration(flags.lockDuration, '--lock-duration'),
  };
}

function port(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new RekeyError('REKEY_ERR_CONFIG', `--port: "${text}" is not a TCP port`);
  return n;
}
