/**
 * An isolated rekey for integration tests: its own database (cloned from the migrated
 * template) and queue prefix, a Runtime with the real registry plus test providers,
 * optionally running workers and the HTTP server in process, logs captured in memory.
 */
import { Writable } from 'node:stream';
import { parseConfig } from '../../src/config/load.js';
import { computePlan } from '../../src/config/plan.js';
import type { ProviderCatalog } from '../../src/core/provider.js';
import type { RunRecord } from '../../src/core/model.js';
import { latestDocument, saveConfig, storedSecrets } from '../../src/db/config-store.js';
import { createLogger } from '../../src/log.js';
import { providers } from '../../src/registry.js';
import { Runtime } from '../../src/runtime.js';
import { type Serving, serve } from '../../src/cli/serve.js';
import type { RouteModule } from '../../src/http/server.js';
import { loadSettings, type Settings } from '../../src/settings.js';
import { TEST_FINGERPRINT_KEY } from '../conformance/refs.js';
import { isolate, type Isolated } from './isolation.js';
import { TEST_AUDIT_KEY } from './services.js';
import { memoryProvider } from './memory-provider.js';
import { slowKeysetProvider, slowLocalProvider } from './slow-providers.js';
import { linesWithRepeatedFields } from './log-lines.js';

export const TEST_LOCAL_STORE_KEY = 'd'.repeat(64);

/** The smallest config: secret `k` in a local store with a random issuer, no target. */
export const ONE_LOCAL_SECRET = `
providers:
  vault: { type: local }
secrets:
  k:
    store: { provider: vault }
    issuer: { type: random }
`;

export interface HarnessOptions {
  label: string;
  /** Serve and run workers in this process. @defaultValue true */
  workers?: boolean;
  routes?: readonly RouteModule[];
  modules?: ProviderCatalog;
  lockDurationMs?: number;
  /** Settings besides the isolated ones (REKEY_TRUST_PROXY, ...), as their environment variables. */
  settings?: Record<string, string>;
  /** A database and prefix made beforehand (e.g. to connect as another role); removed by stop() all the same. */
  isolated?: Isolated;
  /** When /metrics' gauges are sampled (a housekeeping schedule). @defaultValue '15s' */
  gaugesInterval?: string;
  /** REDIS_URL instead of the shared Redis (a Sentinel set or Cluster of the test's own). */
  redisUrl?: string;
}

export interface Harness {
  env: Isolated;
  runtime: Runtime;
  settings: Settings;
  serving: Serving | undefined;
  /** Every log line so far, as written (JSON). */
  logs: string[];
  apply(yaml: string): Promise<void>;
  /** Requests a manual rotation and waits for its run to finish. */
  rotate(secret: string, timeoutMs?: number): Promise<RunRecord>;
  waitForRun(runId: string, timeoutMs?: number): Promise<RunRecord>;
  /** The secret's current value, read from its store (what a client configured just in time would send). */
  currentValue(secret: string): Promise<string>;
  /** Environment for child processes (`rekey worker` and friends) sharing this isolation. */
  childEnv(): NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

export const testModules: ProviderCatalog = providers.with([memoryProvider, slowKeysetProvider, slowLocalProvider]);

export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const env = options.isolated ?? (await isolate(options.label));
  // What this process and the rekey processes a test starts share: where state lives, and the keys.
  const shared = {
    DATABASE_URL: env.databaseUrl,
    REDIS_URL: options.redisUrl ?? env.redisUrl,
    REKEY_FINGERPRINT_KEY: TEST_FINGERPRINT_KEY,
    REKEY_LOCAL_STORE_KEY: TEST_LOCAL_STORE_KEY,
    REKEY_AUDIT_KEY: TEST_AUDIT_KEY,
    REKEY_QUEUE_PREFIX: env.prefix,
  };
  const settings: Settings = loadSettings({ ...shared, REKEY_DRAIN_TIMEOUT: '5s', LOG_LEVEL: 'debug', ...options.settings });
  process.env.REKEY_LOCAL_STORE_KEY = TEST_LOCAL_STORE_KEY;
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const modules = options.modules ?? testModules;
  const lockDurationMs = options.lockDurationMs ?? 5000;
  const runtime = new Runtime({ actor: 'test', settings, modules, log: createLogger('debug', sink), longLived: true, leaseMs: lockDurationMs });
  const serving =
    options.workers === false
      ? (await runtime.connect(), undefined)
      : await serve(runtime, {
          port: 0,
          host: '127.0.0.1',
          workers: true,
          routes: options.routes ?? [],
          worker: { concurrency: { rotations: 5, emergencies: 5, revocations: 5, retirements: 3 }, lockDurationMs, maxStalledCount: 5 },
          housekeeping: { reconcile: '1s', gauges: options.gaugesInterval ?? '15s' },
        });

  const waitForRun = async (runId: string, timeoutMs = 20_000): Promise<RunRecord> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = await runtime.engine.deps.repo.getRun(runId);
      if (run && run.status !== 'running') return run;
      if (Date.now() > deadline) throw new Error(`run ${runId} still ${run?.status} at ${run?.step} after ${timeoutMs} ms (error: ${run?.error})`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  return {
    env,
    runtime,
    settings,
    serving,
    logs,
    async apply(yaml) {
      const loaded = await parseConfig(yaml, 'test.yaml', modules);
      const plan = computePlan(loaded, await storedSecrets(runtime.db), await latestDocument(runtime.db));
      await saveConfig(runtime.db, runtime.audit, loaded, plan, 'test');
      await runtime.reconcile();
    },
    async rotate(secret, timeoutMs) {
      const result = await runtime.engine.requestRotation({ secret, trigger: 'manual' });
      if (result.status === 'stale') throw new Error('manual rotation reported stale');
      return waitForRun(result.run.id, timeoutMs);
    },
    waitForRun,
    async currentValue(secret) {
      const { store } = await runtime.resolver.resolve(secret);
      return (await store.read({ stage: 'current' }, { signal: AbortSignal.timeout(10_000) })).reveal();
    },
    childEnv: () => ({ ...process.env, ...shared, LOG_LEVEL: 'info' }),
    async stop() {
      // A stop that hangs ends as a hook timeout, which shows none of the harness's log: its last lines, while it waits.
      const slow = setTimeout(() => process.stderr.write(`harness ${options.label}: stop() still waiting after 20 s; last log lines:\n${logs.slice(-30).join('\n')}\n`), 20_000);
      try {
        if (serving) await serving.stop();
        else await runtime.close();
      } finally {
        clearTimeout(slow);
      }
      await env.cleanup();
      // Every test that runs rekey in process checks its log lines this way too.
      const repeated = linesWithRepeatedFields(logs);
      if (repeated.length) throw new Error(`log lines hold a field twice (bound by a parent logger and again): ${repeated.slice(0, 10).join('; ')}`);
    },
  };
}
