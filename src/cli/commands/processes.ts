/** worker, server, dev: definitions; the work is in ../actions/processes.ts, imported when one runs. */
import type { Command } from 'commander';
import type { WorkerFlags } from '../actions/processes.js';
import type { CliContext } from '../context.js';
import { duration, port, positiveInt, schedule } from '../options.js';

const actions = () => import('../actions/processes.js');

/** How often /metrics' gauges are sampled: every process serving /metrics has the flag. */
const gaugesFlag = (command: Command) =>
  command.option('--gauges-interval <schedule>', 'when the gauges of /metrics are sampled: a duration (15s) or a cron expression with seconds', schedule, '15s');

export function registerProcessCommands(program: Command, ctx: CliContext): void {
  const workerFlags = (command: Command) =>
    gaugesFlag(command)
      .option('--concurrency <n>', 'jobs at once per queue (emergency rotations and retirements get half)', positiveInt)
      .option('--lock-duration <duration>', "a killed worker's jobs restart after this long", duration, '30s')
      .option('--reconcile-interval <schedule>', 'when queued work is re-derived from PostgreSQL: a duration (15s) or a cron expression with seconds', schedule, '15s')
      .option('--outbox-interval <schedule>', 'when notices waiting in the notification outbox are queued: a duration (1s) or a cron expression with seconds', schedule, '1s');

  workerFlags(program.command('worker').description('Run the rotation, revocation and retirement workers (health and metrics on --port)'))
    .option('--port <port>', 'port for /healthz, /readyz, /metrics', port, 9464)
    .action(async (flags: WorkerFlags & { port: number }) => (await actions()).worker(ctx, flags));

  gaugesFlag(program.command('server'))
    .description('Serve webhooks, Pub/Sub push, /healthz, /readyz and /metrics')
    .option('--port <port>', 'listen port (default: PORT or 8080)', port)
    .action(async (flags: { port?: number; gaugesInterval: string }) => (await actions()).server(ctx, flags));

  workerFlags(program.command('dev').description('Everything in one process on local defaults (auto-started PostgreSQL and Redis when none is running)'))
    .option('-f, --file <path>', 'apply this rekey.yaml at start')
    .option('--port <port>', 'HTTP port', port, 8080)
    .option('--embedded', 'always use embedded PostgreSQL and a private redis-server')
    .option('--demo', 'run the demo scenario end to end, print its timeline, and exit')
    .action(async (flags: WorkerFlags & { port: number; file?: string; embedded?: boolean; demo?: boolean }) => (await actions()).dev(ctx, flags));
}
