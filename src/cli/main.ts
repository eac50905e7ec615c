/**
 * `rekey`: the command line. Exit codes: 0 ok, 1 failure, 2 usage error.
 * Start-up stays light: commands/*.ts define options and import their work (src/cli/actions/)
 * only when they run, and providers load on first use; test/integration/cli-start.test.ts fails
 * when a definition imports a provider, an SDK, Prisma, BullMQ, zod or pino.
 * runCli() takes the provider modules so tests can run real worker processes with
 * extra test providers registered.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ConfigError, describeError, RekeyError } from '../core/errors.js';
import type { ProviderCatalog } from '../core/provider.js';
import { providers } from '../registry.js';
import { describeInfraFailure } from './failures.js';
import { type CliContext, ExitCode } from './context.js';
import { registerAgentCommand } from './commands/agent.js';
import { registerDatabaseCommands } from './commands/database.js';
import { registerKeyCommands } from './commands/keys.js';
import { registerListCommand } from './commands/list.js';
import { registerOperateCommands } from './commands/operate.js';
import { registerProcessCommands } from './commands/processes.js';
import { registerSessionCommands } from './commands/sessions.js';
import { registerTokenCommands } from './commands/tokens.js';
import { registerVerifyCommand } from './commands/verify.js';

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('rekey')
    .description('Rotate credentials in cloud secret managers, distribute them to gateways, revoke leaked keys in seconds.')
    .version('0.1.0')
    .enablePositionalOptions() // so `revoke NAME --version N` is revoke's option, not the program's
    .showHelpAfterError('(run `rekey help <command>` for its usage)')
    .exitOverride();
  registerDatabaseCommands(program, ctx);
  registerProcessCommands(program, ctx);
  registerOperateCommands(program, ctx);
  registerListCommand(program, ctx);
  registerKeyCommands(program, ctx);
  registerTokenCommands(program, ctx);
  registerSessionCommands(program, ctx);
  registerVerifyCommand(program, ctx);
  registerAgentCommand(program, ctx);
  for (const command of program.commands) command.exitOverride();
  return program;
}

export async function runCli(argv: readonly string[], modules: ProviderCatalog = providers): Promise<number> {
  const program = buildProgram({ modules, out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`) });
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    return await exitCodeOf(error);
  }
}

async function exitCodeOf(error: unknown): Promise<number> {
  if (error instanceof ExitCode) return error.code;
  if (error instanceof CommanderError) {
    return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? 0 : 2;
  }
  if (error instanceof ConfigError) {
    const [file] = error.message.split(': ');
    process.stderr.write(`rekey: invalid configuration in ${file}:\n${error.issues.map((i) => `  ${i.path || '(document)'}: ${i.message}`).join('\n')}\n`);
    return 1;
  }
  if (error instanceof RekeyError) {
    // A run recorded whose job Redis refused: what could not be reached, and what to check, first.
    const infra = error.code === 'REKEY_ERR_NOT_QUEUED' ? describeInfraFailure(error.cause, await settingsOrDefaults()) : undefined;
    process.stderr.write(`rekey: ${infra ? `${infra}; ` : ''}${error.message}\n`);
    return 1;
  }
  const infra = describeInfraFailure(error, await settingsOrDefaults());
  if (infra) {
    process.stderr.write(`rekey: ${infra}\n`);
    return 1;
  }
  process.stderr.write(`rekey: ${describeError(error)}\n`);
  return 1;
}

/** Imported only on this path: settings pull in zod, which a command that never fails does not need. */
async function settingsOrDefaults(): Promise<{ databaseUrl: string; redisUrl: string }> {
  const { loadSettings } = await import('../settings.js');
  try {
    return loadSettings();
  } catch {
    return { databaseUrl: process.env.DATABASE_URL ?? '', redisUrl: process.env.REDIS_URL ?? '' };
  }
}

/**
 * Whether this module is the process's entry point. Node names it by its real path,
 * percent-encoded: so must the comparison (a checkout reached through a symlink, or under a
 * directory with a space in its name). An importer whose argv[1] is no file is not it.
 */
function isEntryPoint(): boolean {
  try {
    return !!process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

// Run directly (`tsx src/cli/main.ts`); the installed `rekey` goes through bin/rekey.js.
if (isEntryPoint()) {
  process.exitCode = await runCli(process.argv);
}
