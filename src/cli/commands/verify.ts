/** verify: definition; the work is in ../verify.ts, imported when it runs. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';

export function registerVerifyCommand(program: Command, ctx: CliContext): void {
  program
    .command('verify')
    .description(
      "Compare every target with the keys it must accept and refuse, and each store's current stage with rekey's current version (a secret's, or a client family's, when NAME is given); exit 1 naming what differs",
    )
    .argument('[name]')
    .option('--repair', 'also repair what differs, as the drift check of `rekey worker` and the store check of its full reconcile pass do')
    .option('--json', 'print the reports as JSON')
    .action(async (name: string | undefined, options: { repair?: boolean; json?: boolean }) => (await import('../verify.js')).verify(ctx, name, options));
}
