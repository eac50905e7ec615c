// Rotations through the engine (real workers, PostgreSQL, Redis) with each cloud store against its
// local wire-protocol fake, the random issuer and one in-memory target; the in-memory store is the
// baseline (the engine, queue and database alone). For each store: API calls per steady-state
// rotation as the fake counted them (the retirement of the replaced version included), and latency
// p50/p99 over N rotations:
// - run: the run's own startedAt -> finishedAt (PostgreSQL timestamps): issue, store, deploy, verify,
//   promote;
// - trigger: requestRotation() called -> run finished (adds queueing and the worker's pickup).
//
//   npm run bench -- store-rotation [--rotations 50] [--stores memory,aws,gcp]
import { randomUUID } from 'node:crypto';
import { startCloudFakes, type CloudFakes } from '../test/events/cloud-fakes.js';
import { startHarness, type Harness } from '../test/support/harness.js';
import setupServices from '../test/support/global-setup.js';
import { journal } from '../test/support/memory-provider.js';
import { option, printColumns } from './support/cli.js';

type Store = 'aws' | 'gcp' | 'memory';
// memory first: it warms the engine (JIT, connections) before the stores are measured.
const STORES: readonly Store[] = ['memory', 'aws', 'gcp'];

interface Summary {
  p50: number;
  p99: number;
  max: number;
}

interface StoreFigures {
  callsPerRotation: number;
  calls: Record<string, number>;
  runMs: Summary;
  triggerMs: Summary;
}

export async function main(args: string[] = process.argv.slice(2)): Promise<Record<string, StoreFigures>> {
  const rotations = Number(option(args, '--rotations') ?? 50);
  const stores = (option(args, '--stores') ?? STORES.join(',')).split(',') as Store[];
  for (const s of stores) if (!STORES.includes(s)) throw new Error(`unknown store ${s} (known: ${STORES.join(', ')})`);

  await setupServices(); // the migrated template database the harness clones
  const fakes = await startCloudFakes();
  const h = await startHarness({ label: 'bench-store-rotation' });
  const id = randomUUID().slice(0, 8);
  const results: Record<string, StoreFigures> = {};
  try {
    await h.apply(config(fakes, id, stores));
    for (const store of stores) {
      const counter = store === 'memory' ? memoryCalls(journal(`bench-store-${id}`)) : fakes[store];
      results[store] = await measure(h, counter, `bench-${store}-${id}`, rotations);
    }
  } finally {
    await h.stop();
    await fakes.close();
  }
  printTable(results, rotations);
  console.log(JSON.stringify({ bench: 'store-rotation', rotations, unit: 'ms', results }));
  return results;
}

function config(fakes: CloudFakes, id: string, stores: readonly Store[]): string {
  const binding: Record<Store, string> = {
    aws: `{ provider: aws, name: rekey-bench/${id} }`,
    gcp: `{ provider: gcp, name: rekey-bench-${id} }`,
    memory: '{ provider: mem }',
  };
  return `
providers:
${fakes.providers}
  mem: { type: memory, journal: bench-store-${id} }
  edge: { type: memory, journal: bench-edge-${id} }
secrets:
${stores
  .map(
    (store) => `  bench-${store}-${id}:
    store: ${binding[store]}
    issuer: { type: random }
    targets: [edge]
    grace: 10ms
    timeout: 10s`,
  )
  .join('\n')}
`;
}

interface CallCounter {
  calls: Record<string, number>;
  resetCalls(): void;
}

async function measure(h: Harness, counted: CallCounter, secret: string, rotations: number): Promise<StoreFigures> {
  // Warm up: the first rotation creates the secret, the second reaches the steady state.
  for (let i = 0; i < 2; i++) await rotate(h, secret);
  await retired(h, secret);
  counted.resetCalls();
  const run: number[] = [];
  const trigger: number[] = [];
  for (let i = 0; i < rotations; i++) {
    const { runMs, triggerMs } = await rotate(h, secret);
    run.push(runMs);
    trigger.push(triggerMs);
  }
  await retired(h, secret);
  const calls = Object.fromEntries(Object.entries(counted.calls).map(([name, n]) => [name, n / rotations]));
  return { callsPerRotation: Object.values(calls).reduce((a, b) => a + b, 0), calls, runMs: summarize(run), triggerMs: summarize(trigger) };
}

async function rotate(h: Harness, secret: string): Promise<{ runMs: number; triggerMs: number }> {
  const requested = Date.now();
  const result = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  if (result.status === 'stale') throw new Error('a manual rotation was stale');
  const run = await h.waitForRun(result.run.id, 30_000);
  if (run.status !== 'succeeded') throw new Error(`rotation of ${secret} ${run.status}: ${run.error}`);
  return { runMs: run.finishedAt!.getTime() - run.startedAt.getTime(), triggerMs: run.finishedAt!.getTime() - requested };
}

/** Waits until every version but the current one is revoked (retirement's last step follows store.destroy). */
async function retired(h: Harness, secret: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const open = await h.runtime.db.version.count({ where: { secret: { name: secret }, state: { notIn: ['current', 'revoked'] } } });
    if (open === 0) return;
    if (Date.now() > deadline) throw new Error(`${secret}: ${open} versions still not retired`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The memory store's calls, counted like the fakes count theirs. */
function memoryCalls(j: ReturnType<typeof journal>): CallCounter {
  let from = j.calls.length;
  return {
    get calls() {
      const counts: Record<string, number> = {};
      for (const c of j.calls.slice(from)) if (c.startsWith('store.')) counts[c] = (counts[c] ?? 0) + 1;
      return counts;
    },
    resetCalls: () => void (from = j.calls.length),
  };
}

function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
  return { p50: rank(50), p99: rank(99), max: sorted.at(-1) ?? Number.NaN };
}

function printTable(results: Record<string, StoreFigures>, rotations: number): void {
  console.log(`\nrotations through the engine, ${rotations} per store (store fakes on 127.0.0.1, random issuer, one memory target)\n`);
  const rows = [['store', 'calls/rotation', 'run p50', 'run p99', 'trigger p50', 'trigger p99', 'trigger max']];
  for (const [name, f] of Object.entries(results)) {
    rows.push([name, String(f.callsPerRotation), ...[f.runMs.p50, f.runMs.p99, f.triggerMs.p50, f.triggerMs.p99, f.triggerMs.max].map((n) => `${n} ms`)]);
  }
  printColumns(rows);
  console.log('');
  for (const [name, f] of Object.entries(results)) console.log(`${name}: ${Object.entries(f.calls).map(([call, n]) => `${call} ${n}`).join(', ')}`);
  console.log('');
}
