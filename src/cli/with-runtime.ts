import pino from 'pino';
import { createLogger } from '../log.js';
import { Runtime } from '../runtime.js';
import { loadSettings } from '../settings.js';
import type { CliContext } from './main.js';

/** Runs a command with a Runtime (logging warnings to stderr) and always closes it. */
export async function withRuntime<T>(actor: string, ctx: CliContext, fn: (runtime: Runtime) => Promise<T>): Promise<T> {
  const settings = loadSettings();
  const log = createLogger(process.env.LOG_LEVEL ? settings.logLevel : 'warn', pino.destination(2));
  const runtime = new Runtime({ actor, modules: ctx.modules, settings, log });
  try {
    return await fn(runtime);
  } finally {
    await runtime.close();
  }
}
