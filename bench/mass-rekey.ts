/**
 * Mass re-key: --secrets secrets (default 10,000; local store, random issuer, one redis-keyset
 * target) rotated by `rekey rotate --all` in its own process, with --workers `rekey worker`
 * processes, while the current key of one of them (the last the fleet reaches, rotated once
 * beforehand) is reported leaked (`rekey revoke`'s path, in this process) once half the fleet is
 * done. Measures the fleet's wall time and rate, and that leak's report-to-refused time: until
 * the keyset middleware API servers use (createKeysetVerifier, subscribed like a real one)
 * refuses the key. Baseline in the same run: the same leak of another secret before the fleet.
 *   npm run bench -- mass-rekey [--secrets 10000] [--workers 1] [--per-store 50] [--per-target 50] [--store-rate 1000]
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import setup from '../test/support/global-setup.js';
import { startHarness, type Harness } from '../test/support/harness.js';
import { type Child, kill, runRekey, spawnRekey, spawnWorker, waitForOutput } from '../test/support/processes.js';
import { createKeysetVerifier } from '../providers/redis-keyset/middleware.js';
import { option } from './support/cli.js';

interface Figures {
  secrets: number;
  workers: number;
  limits: { perStore: number; perTarget: number; storeRate: number };
  fleetSeconds: number;
  rotationsPerSecond: number;
  failed: number;
  /** Report to refused by the keyset middleware, no fleet running. */
  leakIdleMs: number;
  /** The same, half-way through the fleet. */
  leakMidFleetMs: number;
  /** How much of the fleet was done when that leak was reported. */
  fleetDoneAtLeak: number;
  load: { start: string; end: string };
}

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

export async function main(args: string[]): Promise<Figures> {
  const n = Number(option(args, '--secrets') ?? '10000');
  const workerCount = Number(option(args, '--workers') ?? '1');
  const limits = { perStore: Number(option(args, '--per-store') ?? '50'), perTarget: Number(option(args, '--per-target') ?? '50'), storeRate: Number(option(args, '--store-rate') ?? '1000') };
  const load = { start: loadAverage(), end: '' };
  await setup(); // the migrated template database the harness clones
  const keyPrefix = `rekey-mass-${randomUUID().slice(0, 8)}:`;
  const channel = `${keyPrefix}changes`;
  const h = await startHarness({ label: 'mass-rekey', workers: false });
  const workers: Child[] = [];
  let fleet: Child | undefined;
  try {
    const names = Array.from({ length: n }, (_, i) => `mr-${String(i).padStart(6, '0')}`);
    const lines = names.map((name) => `  ${name}: { store: { provider: vault }, issuer: { type: random }, targets: [keys] }`);
    await h.apply(`providers:\n  vault: { type: local }\n  keys: { type: redis-keyset, keyPrefix: "${keyPrefix}", channel: "${channel}" }\nsecrets:\n${lines.join('\n')}\n`);
    for (let i = 0; i < workerCount; i++) workers.push(spawnWorker(h.childEnv(), ['--reconcile-interval', '15s']));
    for (const worker of workers) await waitForOutput(worker, /rekey started/);
    const [calm, leaky] = [names[0]!, names.at(-1)!];
    for (const name of [calm, leaky]) {
      const rotated = await runRekey(['rotate', name, '--wait', '--timeout', '5m'], h.childEnv());
      if (rotated.code !== 0) throw new Error(`rekey rotate ${name}: ${rotated.stderr}`);
    }
    const leakIdleMs = await leak(h, calm, keyPrefix, channel);

    const started = Date.now();
    fleet = spawnRekey(['rotate', '--all', '--per-store', String(limits.perStore), '--per-target', String(limits.perTarget), '--store-rate', String(limits.storeRate)], h.childEnv());
    const half = Math.floor(n / 2);
    await waitForOutput(fleet, new RegExp(`^ {2}(\\d+) done`, 'm'), 30 * 60_000);
    for (;;) {
      const done = [...fleet.output().matchAll(/^ {2}(\d+) done, (\d+) failed/gm)].map((m) => Number(m[1]) + Number(m[2])).at(-1) ?? 0;
      if (done >= half) break;
      if (fleet.process.exitCode !== null) throw new Error(`the fleet ended before half-way:\n${fleet.output().slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const fleetDoneAtLeak = await h.runtime.db.run.count({ where: { trigger: 'fleet', status: { not: 'running' } } });
    const leakMidFleetMs = await leak(h, leaky, keyPrefix, channel);
    const code = await fleet.exited;
    const fleetSeconds = (Date.now() - started) / 1000;
    const result = /Fleet [0-9a-f-]{36}: (\d+) rotated, (\d+) failed/.exec(fleet.output());
    if (!result) throw new Error(`rekey rotate --all exited ${code}:\n${fleet.output().slice(-2000)}`);
    load.end = loadAverage();
    const figures: Figures = {
      secrets: n,
      workers: workerCount,
      limits,
      fleetSeconds: Math.round(fleetSeconds),
      rotationsPerSecond: Math.round((Number(result[1]) / fleetSeconds) * 10) / 10,
      failed: Number(result[2]),
      leakIdleMs,
      leakMidFleetMs,
      fleetDoneAtLeak,
      load,
    };
    console.log(
      `${n} secrets, ${workerCount} worker process(es): rotate --all in ${figures.fleetSeconds} s (${figures.rotationsPerSecond}/s, ${figures.failed} failed); ` +
        `leak report-to-refused ${leakIdleMs} ms idle, ${leakMidFleetMs} ms with ${fleetDoneAtLeak} of the fleet done (load ${load.start} -> ${load.end})`,
    );
    console.log(JSON.stringify({ bench: 'mass-rekey', ...figures }));
    return figures;
  } finally {
    if (fleet?.process.exitCode === null) await kill(fleet);
    for (const worker of workers) await kill(worker, 'SIGTERM');
    await h.stop();
  }
}

/**
 * Reports the current key of `secret` leaked and waits until the keyset middleware refuses it:
 * milliseconds from the report to the refusal.
 */
async function leak(h: Harness, secret: string, keyPrefix: string, channel: string): Promise<number> {
  const { store } = await h.runtime.resolver.resolve(secret);
  const key = (await store.read({ stage: 'current' }, { signal: new AbortController().signal })).reveal();
  const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: secret }, state: 'current' }, select: { number: true } });
  const verifier = await createKeysetVerifier({ redisUrl: h.settings.redisUrl, fingerprintKey: h.settings.fingerprintKey!, keyset: secret, keyPrefix, channel });
  try {
    if (verifier.check(key) === undefined) throw new Error(`${secret}'s current key is not accepted before the leak`);
    const reported = performance.now();
    await h.runtime.engine.revoke(secret, current.number);
    while (verifier.check(key) !== undefined) await new Promise((resolve) => setTimeout(resolve, 2));
    return Math.round(performance.now() - reported);
  } finally {
    await verifier.close();
  }
}
