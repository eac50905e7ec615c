/** rotate, revoke, decommission, status: definitions; the work is in ../actions/operate.ts, imported when one runs. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { parseDuration } from '../../core/duration.js';
import { duration, positiveInt, STATUS_PAGE } from '../options.js';

const actions = () => import('../actions/operate.js');

/** The longest --grace: a run's grace_ms is a PostgreSQL integer (2^31 - 1 ms is 24.8 days). */
const MAX_FLEET_GRACE_MS = 24 * 24 * 3600 * 1000;

export interface RotateOptions {
  wait?: boolean;
  timeout: string;
  json?: boolean;
  all?: boolean;
  selector?: string;
  store?: string;
  issuer?: string;
  grace?: string;
  dryRun?: boolean;
  perStore: number;
  storeRate?: number;
  perTarget: number;
}

export function registerOperateCommands(program: Command, ctx: CliContext): void {
  program
    .command('rotate')
    .description('Rotate a secret now (a running rotation of it is joined, not duplicated), or a fleet of them (--all, --selector, --store, --issuer: docs/scale.md)')
    .argument('[name]')
    .option('--wait', 'wait until the new version is current (or the run rolled back)')
    .option('--timeout <duration>', 'with --wait: give up after this long', duration, '5m')
    .option('--json', 'print the result as JSON')
    .option('--all', 'fleet: every secret in the config')
    .option('--selector <glob>', 'fleet: secrets whose name matches the glob (payments-*)')
    .option('--store <name>', 'fleet: secrets kept in this store instance')
    .option('--issuer <name>', 'fleet: secrets minted by this issuer instance or type')
    .option('--grace <duration>', 'fleet: overlap for each replaced version instead of its grace (more than 0)', duration)
    .option('--dry-run', 'fleet: print what would be rotated and change nothing')
    .option('--per-store <n>', 'fleet: rotations at once per store instance', positiveInt, 10)
    .option('--store-rate <n>', "fleet: rotations started per second per store instance (default: the store's own, 10; Google Secret Manager 1)", positiveInt)
    .option('--per-target <n>', 'fleet: rotations at once per target instance', positiveInt, 20)
    .action(async (name: string | undefined, options: RotateOptions, command: Command) => {
      const fleet = options.all || options.selector !== undefined || options.store !== undefined || options.issuer !== undefined;
      if (!name === !fleet) command.error('rekey rotate: give a NAME, or a fleet with --all, --selector, --store or --issuer', { exitCode: 2 });
      if (options.grace !== undefined && parseDuration(options.grace) === 0) command.error('rekey rotate: --grace must be more than 0 (a zero overlap is the leak path: rekey revoke)', { exitCode: 2 });
      if (options.grace !== undefined && parseDuration(options.grace)! > MAX_FLEET_GRACE_MS) command.error('rekey rotate: --grace must be at most 24d (each run records its overlap in a 32-bit count of milliseconds)', { exitCode: 2 });
      if (!fleet && (options.grace !== undefined || options.dryRun)) command.error('rekey rotate: --grace and --dry-run are for fleets', { exitCode: 2 });
      return fleet ? (await actions()).rotateMany(ctx, options) : (await actions()).rotate(ctx, name!, options);
    });

  program
    .command('revoke')
    .description('Revoke one version now: the leak path (retire everywhere, revoke upstream; a current version is replaced per onLeak)')
    .argument('[name]')
    .option('--version <n>', 'version number (see rekey status)', positiveInt)
    .option('--token-stdin', 'instead of NAME --version: leaked tokens on stdin, one per line, each takes the leak path of its version')
    .option('--json', 'print the result as JSON')
    .action(async (name: string | undefined, options: { version?: number; tokenStdin?: boolean; json?: boolean }, command: Command) => {
      if (options.tokenStdin) {
        if (name || options.version !== undefined) command.error('rekey revoke: --token-stdin takes no NAME or --version', { exitCode: 2 });
        return (await actions()).revokeTokens(ctx, options.json ?? false);
      }
      if (!name || options.version === undefined) command.error('rekey revoke: give NAME --version N, or --token-stdin', { exitCode: 2 });
      return (await actions()).revoke(ctx, name, options.version, options.json ?? false);
    });

  program
    .command('decommission')
    .description('Retire and revoke everywhere every live key of a secret removed from rekey.yaml (its history is kept)')
    .argument('<name>')
    .option('--wait', 'wait until every key is revoked')
    .option('--timeout <duration>', 'with --wait: give up after this long', duration, '5m')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, options: { wait?: boolean; timeout: string; json?: boolean }) => (await actions()).decommission(ctx, name, options));

  program
    .command('status')
    .description('Versions with their states, per-target delivery, running work and the next rotation')
    .argument('[name]')
    .option('--json', 'print as JSON')
    .option('--versions <n>', 'versions to show per secret', positiveInt, 5)
    .option('--limit <n>', 'secrets per page', positiveInt, STATUS_PAGE)
    .option('--after <name>', 'the page after this secret (the last one shown): `rekey status` ends with the command for the next page')
    .action(async (name: string | undefined, options: { json?: boolean; versions: number; limit: number; after?: string }) => (await actions()).status(ctx, name, options));
}
