// Self-healing delivery at scale: 200 secrets on one HAProxy map and one Caddy (admin API
// only, nothing persisted), a worker in this process running the drift checks.
//
// 1. Idle cost, with a baseline: requests to each gateway's admin interface (counted by a
//    loopback proxy in front of the Runtime API and the admin API) and this process's CPU,
//    first with the drift checks effectively off (interval 1d), then at `--interval`.
// 2. Recovery: both gateways restarted with an empty state (HAProxy from an empty map file,
//    Caddy from its config file); the time from the restart until each of the 200 current
//    keys is accepted again, p50/p99/max per gateway. Goal: within one interval plus 2 s.
//
//   npm run bench -- drift [--secrets 200] [--interval 5s]
import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { createServer, connect, type Server } from 'node:net';
import { parseConfig } from '../src/config/load.js';
import { computePlan } from '../src/config/plan.js';
import { parseDuration } from '../src/core/duration.js';
import { type Serving, serve } from '../src/cli/serve.js';
import { latestDocument, saveConfig, storedSecrets } from '../src/db/config-store.js';
import { createLogger } from '../src/log.js';
import { providers } from '../src/registry.js';
import { Runtime } from '../src/runtime.js';
import { loadSettings } from '../src/settings.js';
import { send, startBackend, startCaddy, startHaproxy, type Gateway } from '../test/support/gateways/index.js';
import { option, printColumns } from './support/cli.js';
import { benchEnvironment, percentile } from './support/environment.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A loopback TCP proxy that counts the requests clients send (lines `isRequest` matches);
 * `rewrite` edits what they send (Caddy's admin API checks the Host header).
 */
async function countingProxy(target: { host: string; port: number }, isRequest: (line: string) => boolean, rewrite: (text: string, port: number) => string = (text) => text) {
  let requests = 0;
  const sockets = new Set<{ destroy(): void }>();
  // Half-open both ways: the Runtime API client ends its side after the command and reads the answer.
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = connect({ port: target.port, host: target.host, allowHalfOpen: true });
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      for (const line of text.split('\n')) if (isRequest(line)) requests += 1;
      upstream.write(Buffer.from(rewrite(text, (server.address() as { port: number }).port), 'latin1'));
    });
    client.on('end', () => upstream.end());
    upstream.pipe(client);
    const fail = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', fail);
    upstream.on('error', fail);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Summary {
  p50: number;
  p99: number;
  max: number;
  /** Keys never accepted again before the bench gave up. */
  lost: number;
}

export async function main(args: string[] = process.argv.slice(2)) {
  const count = Number(option(args, '--secrets') ?? 200);
  const intervalText = option(args, '--interval') ?? '5s';
  const intervalMs = parseDuration(intervalText)!;
  const env = await benchEnvironment('drift');
  const backend = await startBackend();
  const haproxy = await startHaproxy(backend.port, { statsMaxconn: 50 });
  const caddy = await startCaddy(backend.port);
  const runtimeProxy = await countingProxy({ host: '127.0.0.1', port: Number(new URL(haproxy.runtimeApi.tcp.replace('tcp:', 'http:')).port) }, (line) => /^(show|add|set|del) map/.test(line));
  const adminPort = Number(new URL(caddy.admin).port);
  const adminProxy = await countingProxy(
    { host: '127.0.0.1', port: adminPort },
    (line) => /^(GET|POST|PUT|PATCH|DELETE) \//.test(line),
    (text, port) => text.replace(new RegExp(`^Host: 127\\.0\\.0\\.1:${port}\r$`, 'im'), `Host: 127.0.0.1:${adminPort}\r`),
  );
  const settings = loadSettings({ DATABASE_URL: env.databaseUrl, REDIS_URL: env.redisUrl, REKEY_FINGERPRINT_KEY: 'e'.repeat(64), REKEY_AUDIT_KEY: 'f'.repeat(64), REKEY_LOCAL_STORE_KEY: 'd'.repeat(64), REKEY_QUEUE_PREFIX: env.prefix, LOG_LEVEL: 'warn' });
  process.env.REKEY_LOCAL_STORE_KEY = 'd'.repeat(64);
  const runtime = new Runtime({ actor: 'bench', settings, modules: providers, log: createLogger(process.env.LOG_LEVEL ?? 'warn'), longLived: true });
  let serving: Serving | undefined;
  const names = Array.from({ length: count }, (_, i) => `drift-${String(i).padStart(3, '0')}`);
  const apply = async (interval: string) => {
    const yaml = `
providers:
  vault: { type: local }
  edge: { type: haproxy, runtimeApi: "tcp://127.0.0.1:${runtimeProxy.port}", map: "${haproxy.map}", drift: { interval: ${interval} } }
  web: { type: caddy, admin: "http://127.0.0.1:${adminProxy.port}", drift: { interval: ${interval} } }
secrets:
${names.map((name) => `  ${name}: { store: { provider: vault }, issuer: { type: random, prefix: rk_bd_ }, targets: [edge, web], retry: { attempts: 10, backoff: 200ms } }`).join('\n')}
`;
    const loaded = await parseConfig(yaml, 'bench.yaml', providers);
    await saveConfig(runtime.db, runtime.audit, loaded, computePlan(loaded, await storedSecrets(runtime.db), await latestDocument(runtime.db)), 'bench');
  };
  try {
    await apply('1d');
    serving = await serve(runtime, { port: 0, host: '127.0.0.1', workers: true, routes: [], housekeeping: { reconcile: '15s', gauges: '15s' } });
    console.log(`rotating ${count} secrets onto HAProxy and Caddy...`);
    // One at a time: 200 concurrent requests would queue for the pool's transactions.
    const runs = [];
    for (const secret of names) runs.push(await runtime.engine.requestRotation({ secret, trigger: 'manual' }));
    const rotatedBy = Date.now() + 10 * 60_000;
    for (const result of runs) {
      if (result.status === 'stale') throw new Error('stale');
      for (;;) {
        if (Date.now() > rotatedBy) throw new Error(`rotation of ${result.run.secret} still running after 10 minutes`);
        const run = await runtime.engine.deps.repo.getRun(result.run.id);
        if (run && run.status !== 'running') {
          if (run.status !== 'succeeded') throw new Error(`rotation of ${run.secret} ${run.status}: ${run.error}`);
          break;
        }
        await sleep(100);
      }
    }
    const keys = await Promise.all(names.map(async (name) => (await (await runtime.resolver.resolve(name)).store.read({ stage: 'current' }, { signal: new AbortController().signal })).reveal()));

    // Idle cost: the first checks of the 1d interval come within 5 s of the workers' start.
    await sleep(6000);
    const windowMs = Math.max(3 * intervalMs, 15_000);
    const idle = async (label: string) => {
      const [r0, a0, cpu0, t0] = [runtimeProxy.requests(), adminProxy.requests(), process.cpuUsage(), performance.now()];
      await sleep(windowMs);
      const cpu = process.cpuUsage(cpu0);
      const seconds = (performance.now() - t0) / 1000;
      return { label, haproxyPerSecond: (runtimeProxy.requests() - r0) / seconds, caddyPerSecond: (adminProxy.requests() - a0) / seconds, cpuPercent: ((cpu.user + cpu.system) / 1e6 / seconds) * 100 };
    };
    console.log(`idle for ${windowMs / 1000} s without drift checks, then ${windowMs / 1000} s with them every ${intervalText}...`);
    const baseline = await idle('no drift checks (interval 1d)');
    await apply(intervalText);
    await sleep(intervalMs + 2000); // the new interval is picked up, the first checks done
    const checking = await idle(`drift checks every ${intervalText}`);

    // Recovery from a restart with nothing in either gateway.
    console.log('restarting both gateways with an empty state...');
    const recovery: Record<string, Summary> = {};
    await writeFile(haproxy.map, '');
    await Promise.all([haproxy.restart(), caddy.restart()]);
    const restartedAt = performance.now();
    const deadline = restartedAt + intervalMs + 60_000;
    await Promise.all(
      [haproxy, caddy].map(async (gateway: Gateway) => {
        const agent = new Agent({ keepAlive: true, maxSockets: 16 });
        const back = new Map<number, number>();
        while (back.size < keys.length && performance.now() < deadline) {
          const pending = keys.map((key, i) => [key, i] as const).filter(([, i]) => !back.has(i));
          for (let start = 0; start < pending.length; start += 16) {
            await Promise.all(
              pending.slice(start, start + 16).map(async ([key, i]) => {
                const answer = await send(gateway.url, gateway.header, key, agent).catch(() => ({ status: 0 }));
                if (answer.status === 200) back.set(i, performance.now() - restartedAt);
              }),
            );
          }
          await sleep(50);
        }
        agent.destroy();
        const sorted = [...back.values()].sort((a, b) => a - b);
        recovery[gateway.name] = { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN, lost: keys.length - sorted.length };
      }),
    );

    console.log('');
    printColumns([
      ['idle load', 'HAProxy Runtime API req/s', 'Caddy admin req/s', 'rekey process CPU %'],
      ...[baseline, checking].map((r) => [r.label, r.haproxyPerSecond.toFixed(2), r.caddyPerSecond.toFixed(2), r.cpuPercent.toFixed(2)]),
      ['added by the drift checks', (checking.haproxyPerSecond - baseline.haproxyPerSecond).toFixed(2), (checking.caddyPerSecond - baseline.caddyPerSecond).toFixed(2), (checking.cpuPercent - baseline.cpuPercent).toFixed(2)],
    ]);
    console.log('');
    printColumns([
      ['restart with empty state -> key accepted (ms)', 'p50', 'p99', 'max', 'lost'],
      ...Object.entries(recovery).map(([name, s]) => [name, s.p50.toFixed(0), s.p99.toFixed(0), s.max.toFixed(0), String(s.lost)]),
    ]);
    console.log(`goal: every key back within one interval plus 2 s (${intervalMs + 2000} ms); idle drift checking under 1% of a core for ${count} secrets`);
    const figures = { bench: 'drift', secrets: count, intervalMs, idle: { baseline, checking }, recovery };
    console.log(JSON.stringify(figures));
    return figures;
  } finally {
    await serving?.stop();
    if (!serving) await runtime.close();
    await Promise.all([runtimeProxy.close(), adminProxy.close()]);
    await Promise.all([haproxy.stop(), caddy.stop()]);
    await backend.close();
    await env.cleanup();
  }
}
