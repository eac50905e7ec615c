/** keygen, scan: the random issuer's key format, offline. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { findKeys, generateKey } from '../../../providers/random/key-format.js';
import { ExitCode, type CliContext } from '../main.js';

export function registerKeyCommands(program: Command, ctx: CliContext): void {
  program
    .command('keygen')
    .description('Print one new API key in rekey\'s format (prefix + 30 base62 + CRC32 checksum)')
    .option('--prefix <prefix>', 'key prefix, e.g. rk_live_', 'rk_')
    .action((options: { prefix: string }) => ctx.out(generateKey(options.prefix)));

  program
    .command('scan')
    .description('Find rekey keys (checksum verified) in files; exits 1 if any is found')
    .argument('<files...>')
    .action(async (files: string[]) => {
      let found = 0;
      for (const file of files) {
        for (const { line, token } of findKeys(await readFile(file, 'utf8'))) {
          ctx.out(`${file}:${line}: ${token.slice(0, 8)}...`);
          found += 1;
        }
      }
      if (found) throw new ExitCode(1);
    });
}
