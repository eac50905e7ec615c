/** keygen, scan: rekey's key format (keygen offline; scan's work is in ../scan.ts, imported when it runs). */
import { type Command, Option } from 'commander';
import { generateKey } from '../../core/key-format.js';
import type { CliContext } from '../context.js';
import type { ScanOptions } from '../scan.js';
import { keyPrefix } from '../options.js';

export function registerKeyCommands(program: Command, ctx: CliContext): void {
  program
    .command('keygen')
    .description('Print one new API key in rekey\'s format (prefix + 30 base62 + CRC32 checksum)')
    .option('--prefix <prefix>', 'key prefix, e.g. rk_live_', keyPrefix, 'rk_')
    .action((options: { prefix: string }) => ctx.out(generateKey(options.prefix)));

  program
    .command('scan')
    .description('Find rekey keys (checksum verified: no false positives) in files, directories or the git index; exits 1 if any is found')
    .argument('[paths...]', 'files and directories (.git and node_modules skipped)')
    .option('--staged', 'scan what the git index holds for the next commit (a pre-commit hook)')
    .addOption(new Option('--format <format>', 'text, or SARIF 2.1.0 for code scanning').choices(['text', 'sarif']).default('text'))
    .option('--check', "ask rekey's admin API which keys found are live (REKEY_API_URL, REKEY_API_TOKEN with read scope)")
    .option('--report', 'send the live ones to the leak path (a token with revoke scope); implies --check')
    .action(async (paths: string[], options: ScanOptions, command: Command) =>
      (await import('../scan.js')).scan(ctx, paths, options, (message) => command.error(message, { exitCode: 2, code: 'rekey.scan.usage' })),
    );
}
