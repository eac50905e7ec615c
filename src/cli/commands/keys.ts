/** keygen, scan: the random issuer's key format, offline. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { findKeys, generateKey } from '../../core/key-format.js';
import { ExitCode, type CliContext } from '../context.js';
import { keyPrefix } from '../options.js';

export function registerKeyCommands(program: Command, ctx: CliContext): void {
  program
    .command('keygen')
    .description('Print one new API key in rekey\'s format (prefix + 30 base62 + CRC32 checksum)')
    .option('--prefix <prefix>', 'key prefix, e.g. rk_live_', keyPrefix, 'rk_')
    .action((options: { prefix: string }) => ctx.out(generateKey(options.prefix)));

  program
    .command('scan')
    .description('Find rekey keys (checksum verified) in files; exits 1 if any is found')
    .argument('<files...>')
    .action(async (files: string[], _options: unknown, command: Command) => {
      // Every file is read before anything is printed: a missing one is a usage error, not a half scan.
      const texts: string[] = [];
      for (const file of files) {
        try {
          texts.push(await readFile(file, 'utf8'));
        } catch (error) {
          command.error(`error: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { exitCode: 2, code: 'rekey.scan.unreadable' });
        }
      }
      let found = 0;
      files.forEach((file, i) => {
        for (const { line, token } of findKeys(texts[i]!)) {
          ctx.out(`${file}:${line}: ${token.slice(0, 8)}...`);
          found += 1;
        }
      });
      if (found) throw new ExitCode(1);
    });
}
