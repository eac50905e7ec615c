// `npm run bench -- NAME --help` prints the benchmark's leading comment instead of running it (bench/run.ts):
// `usage --help` ran the whole 10,000-key usage benchmark, outside any lock, on a shared 2-core machine.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { benchHelp } from '../../bench/support/cli.js';
import { packageRoot } from '../../src/paths.js';

describe('bench --help', () => {
  it('is the leading comment, from a block or from // lines', () => {
    expect(benchHelp('/**\n * Measures x.\n *   npm run bench -- x [--n 3]\n */\nimport a;')).toBe('Measures x.\n  npm run bench -- x [--n 3]');
    expect(benchHelp('// Measures y,\n// twice.\n//\n//   npm run bench -- y\nimport b;')).toBe('Measures y,\ntwice.\n\n  npm run bench -- y');
  });

  it('prints it for a benchmark and runs nothing', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/run.ts', 'usage', '--help'], { cwd: packageRoot, timeout: 30_000 });
    expect(stdout).toMatch(/^npm run bench -- usage \[args\]\n\nUsage-based protection at scale/);
    expect(stdout).toContain('npm run bench -- usage [--keys 10000]');
  }, 40_000);

  it('finds a leading comment in every benchmark', () => {
    for (const file of readdirSync(`${packageRoot}/bench`).filter((f) => f.endsWith('.ts') && f !== 'run.ts')) {
      expect({ file, help: benchHelp(readFileSync(`${packageRoot}/bench/${file}`, 'utf8')).length > 40 }).toEqual({ file, help: true });
    }
  });
});
