/** Runs `rekey` in this process with an environment and captures what it prints. */
import { runCli } from '../../src/cli/main.js';
import type { ProviderCatalog } from '../../src/core/provider.js';
import { testModules } from './harness.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function rekey(args: string[], env: NodeJS.ProcessEnv = {}, modules: ProviderCatalog = testModules): Promise<CliResult> {
  const saved = { ...process.env };
  const out = { stdout: '', stderr: '' };
  const write = { stdout: process.stdout.write.bind(process.stdout), stderr: process.stderr.write.bind(process.stderr) };
  Object.assign(process.env, env);
  process.stdout.write = ((chunk: string | Uint8Array) => ((out.stdout += chunk.toString()), true));
  process.stderr.write = ((chunk: string | Uint8Array) => ((out.stderr += chunk.toString()), true));
  try {
    const code = await runCli(['node', 'rekey', ...args], modules);
    return { code, ...out };
  } finally {
    process.stdout.write = write.stdout;
    process.stderr.write = write.stderr;
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}
