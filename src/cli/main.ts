/**
 * `rekey`: the command line. Exit codes: 0 ok, 1 failure, 2 usage error.
 * runCli() takes the provider modules so tests can run real worker processes with
 * extra test providers registered.
 */
import { Command, CommanderError } from 'commander';
import { ConfigError, describeError, RekeyError } from '../core/errors.js';
import type { AnyProviderModule } from '../core/provider.js';
import { providers } from '../registry.js';
import { registerDatabaseCommands } from './commands/database.js';
import { registerKeyCommands } from './commands/keys.js';
import { registerOperateCommands } from './commands/operate.js';
import { registerProcessCommands } from './commands/processes.js';

export interface CliContext {
  modules: readonly AnyProviderModule[];
  out: (text: string) => void;
}

export class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('rekey')
    .description('Rotate credentials in cloud secret managers, distribute them to gateways, revoke leaked keys in seconds.')
    .version('0.1.0')
    .enablePositionalOptions() // so `revoke NAME --version N` is revoke's option, not the program's
    .showHelpAfterError()
    .exitOverride();
  registerDatabaseCommands(program, ctx);
  registerProcessCommands(program, ctx);
  registerOperateCommands(program, ctx);
  registerKeyCommands(program, ctx);
  for (const command of program.commands) command.exitOverride();
  return program;
}

export async function runCli(argv: readonly string[], modules: readonly AnyProviderModule[] = providers): Promise<number> {
  const program = buildProgram({ modules, out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`) });
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    return exitCodeOf(error);
  }
}

function exitCodeOf(error: unknown): number {
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
    process.stderr.write(`rekey: ${error.message}\n`);
    return 1;
  }
  process.stderr.write(`rekey: ${describeError(error)}\n`);
  return 1;
}

// Run directly (`tsx src/cli/main.ts`); the installed `rekey` goes through bin/rekey.js.
if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await runCli(process.argv);
}
