/** rotate, revoke, status. */
import type { Command } from 'commander';
import { humanDuration, requireDuration } from '../../core/duration.js';
import { RekeyError } from '../../core/errors.js';
import type { RunRecord } from '../../core/model.js';
import { revokeTokensCommand } from '../../leaks/cli.js';
import type { Runtime } from '../../runtime.js';
import { ExitCode, type CliContext } from '../main.js';
import { formatStatus, secretStatus } from '../status.js';
import { withRuntime } from '../with-runtime.js';

export function registerOperateCommands(program: Command, ctx: CliContext): void {
  program
    .command('rotate')
    .description('Rotate a secret now (a running rotation of it is joined, not duplicated)')
    .argument('<name>')
    .option('--wait', 'wait until the new version is current (or the run rolled back)')
    .option('--timeout <duration>', 'with --wait: give up after this long', '5m')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, options: { wait?: boolean; timeout: string; json?: boolean }) => {
      const timeoutMs = requireDuration(options.timeout, '--timeout');
      await withRuntime('cli', ctx, async (runtime) => {
        await runtime.connect();
        const result = await runtime.engine.requestRotation({ secret: name, trigger: 'manual' });
        if (result.status === 'stale') return; // manual requests are never stale
        const { run } = result;
        if (!options.json) ctx.out(`${result.status === 'queued' ? 'Queued' : 'Joined running'} rotation ${run.id} of ${name}.`);
        if (!options.wait) {
          if (options.json) ctx.out(JSON.stringify({ runId: run.id, status: result.status }));
          return;
        }
        const finished = await waitForRun(runtime, run, timeoutMs, options.json ? () => undefined : ctx.out);
        if (options.json) ctx.out(JSON.stringify({ runId: run.id, status: finished.status, error: finished.error }));
        else ctx.out(finished.status === 'succeeded' ? `Rotated ${name}.` : `Rotation ${finished.status}: ${finished.error ?? 'no error recorded'}`);
        if (finished.status !== 'succeeded') throw new ExitCode(1);
      });
    });

  program
    .command('revoke')
    .description('Revoke one version now: the leak path (retire everywhere, revoke upstream; a current version is replaced per onLeak)')
    .argument('[name]')
    .option('--version <n>', 'version number (see rekey status)', (v) => {
      if (!/^\d+$/.test(v)) throw new RekeyError('REKEY_ERR_CONFIG', `--version must be a number, not "${v}"`);
      return Number(v);
    })
    .option('--token-stdin', 'instead of NAME --version: leaked tokens on stdin, one per line, each takes the leak path of its version')
    .option('--json', 'print the result as JSON')
    .action(async (name: string | undefined, options: { version?: number; tokenStdin?: boolean; json?: boolean }, command: Command) => {
      if (options.tokenStdin) {
        if (name || options.version !== undefined) command.error('rekey revoke: --token-stdin takes no NAME or --version', { exitCode: 2 });
        return withRuntime('cli', ctx, (runtime) => revokeTokensCommand(runtime, process.stdin, ctx.out, options.json ?? false));
      }
      if (!name || options.version === undefined) command.error('rekey revoke: give NAME --version N, or --token-stdin', { exitCode: 2 });
      await withRuntime('cli', ctx, async (runtime) => {
        await runtime.connect();
        const record = await runtime.engine.revoke(name, options.version!);
        if (options.json) ctx.out(JSON.stringify({ outcome: record.outcome, versionId: record.versionId }));
        else ctx.out(`Version ${options.version} of ${name}: ${record.outcome}.`);
      });
    });

  program
    .command('status')
    .description('Versions with their states, per-target delivery, running work and the next rotation')
    .argument('[name]')
    .option('--json', 'print as JSON')
    .option('--versions <n>', 'versions to show per secret', '5')
    .action(async (name: string | undefined, options: { json?: boolean; versions: string }) => {
      await withRuntime('cli', ctx, async (runtime) => {
        await runtime.connect().catch(() => undefined);
        const statuses = await secretStatus(runtime, name, Number(options.versions) || 5);
        if (name && !statuses.length) throw new RekeyError('REKEY_ERR_UNKNOWN', `no managed secret named ${name}`);
        ctx.out(options.json ? JSON.stringify(statuses, null, 2) : formatStatus(statuses));
      });
    });
}

async function waitForRun(runtime: Runtime, run: RunRecord, timeoutMs: number, progress: (line: string) => void): Promise<RunRecord> {
  const started = Date.now();
  let step = '';
  for (;;) {
    const current = (await runtime.engine.deps.repo.getRun(run.id))!;
    if (current.step !== step) {
      step = current.step;
      progress(`  ${humanDuration(Date.now() - started).padStart(7)}  ${step}${current.error && current.status === 'running' ? ` (retrying: ${current.error})` : ''}`);
    }
    if (current.status !== 'running') return current;
    if (Date.now() - started > timeoutMs) {
      throw new RekeyError('REKEY_ERR_TIMEOUT', `run ${run.id} still at ${current.step} after ${humanDuration(timeoutMs)}; is a worker running? (rekey worker)`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
