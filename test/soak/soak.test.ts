/**
 * The chaos soak, short form: `npm run bench -- soak --short` runs as a child process with
 * its own PostgreSQL, Redis and HAProxy (nothing shared is touched), three worker processes
 * and a server, 200 secrets on one-second schedules, leak reports, and every kind of fault
 * at least once. It exits 0 only when no invariant was violated (bench/soak.ts). About
 * two and a half minutes on two cores.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildChildren } from '../support/children.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
let removeBuild: () => void;

// The soak's rekey processes (its fleet's starts, and restarts after each kill) run the build the
// other projects' processes run (made here when no other project's global setup made it), not tsx.
beforeAll(async () => {
  removeBuild = await buildChildren();
}, 120_000);
afterAll(() => removeBuild?.());

it('the short chaos soak: every fault injected, no invariant violated', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', 'soak', '--short'], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, REKEY_TEST_BUILD: process.env.REKEY_TEST_BUILD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code, output.slice(-8000)).toBe(0);
  const figures = JSON.parse(output.trim().split('\n').findLast((line) => line.startsWith('{"bench":"soak"'))!) as {
    settled: boolean;
    rotations: { succeeded: number };
    leaks: { reported: number; blocked: number };
    faults: Record<string, number>;
    probes: { accepted: number };
    valuesChecked: number;
    violations: Record<string, number>;
  };
  expect(figures.settled).toBe(true);
  expect(Object.values(figures.violations).every((n) => n === 0)).toBe(true);
  expect(Object.values(figures.faults).every((n) => n >= 1), JSON.stringify(figures.faults)).toBe(true);
  expect(figures.rotations.succeeded).toBeGreaterThan(200);
  expect(figures.leaks.blocked).toBe(figures.leaks.reported);
  expect(figures.leaks.reported).toBeGreaterThan(10);
  // The checker really looked: keys probed through HAProxy, values searched for at the end.
  expect(figures.probes.accepted).toBeGreaterThan(100);
  expect(figures.valuesChecked).toBeGreaterThan(100);
}, 1_800_000); // a hang guard: the soak waits on progress (its own guard fails it when none comes); at load 20 it outlasted 900 s
