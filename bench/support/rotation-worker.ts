/**
 * One worker process for `rotation-throughput`: the real engine and BullMQ workers on the
 * bench's database and queue prefix, with the in-memory provider (so providers cost
 * nothing). Spawned with an IPC channel: it sends `ready` once its workers run, answers
 * `count` with the SQL statements (in all and by name), PostgreSQL round trips (by what each
 * carried), Redis commands (in all and by name) and Redis round trips it sent, and the
 * CPU time it used so far, and dies with its parent (the bench stops it with SIGTERM when
 * done). Environment: the bench's (benchEnvironment().env) and CONCURRENCY.
 */
import { loadSettings } from '../../src/settings.js';
import { createLogger } from '../../src/log.js';
import { startWorkers } from '../../src/queue/workers.js';
import { providers } from '../../src/registry.js';
import { Runtime } from '../../src/runtime.js';
import { memoryProvider } from '../../test/support/memory-provider.js';
import { countCommands, countStatements } from './environment.js';

const send = (message: unknown) => process.send!(message);
process.once('disconnect', () => process.kill(process.pid, 'SIGKILL'));
// A clean exit, so a --cpu-prof profile is written.
process.once('SIGTERM', () => process.exit(0));
const concurrency = Number(process.env.CONCURRENCY ?? 20);
// Before any connection exists: createDb's pool binds each connection's query method when it connects.
const statements = countStatements();
const settings = loadSettings({ ...process.env, LOG_LEVEL: 'warn' });
const runtime = new Runtime({ actor: 'bench', settings, modules: providers.with([memoryProvider]), log: createLogger('warn'), longLived: true });
await runtime.connect();
startWorkers(runtime.engine, runtime.redis, settings.queuePrefix, runtime.log, {
  concurrency: { rotations: concurrency, emergencies: concurrency, revocations: concurrency, retirements: concurrency },
  lockDurationMs: 30_000,
  maxStalledCount: 5,
});
const redis = countCommands(settings.queuePrefix);
process.on('message', (message: string) => {
  if (message === 'count') {
    send({
      statements: statements.count(),
      byName: statements.byName(),
      pgTrips: statements.tripsByKind(),
      redis: redis.count(),
      redisByName: redis.byName(),
      redisTrips: redis.roundTrips(),
      cpuMs: cpuMs(),
    });
  }
});
send('ready');

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
