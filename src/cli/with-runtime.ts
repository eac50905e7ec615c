import { userInfo } from 'node:os';
import type { DestinationStream } from 'pino';
import { createLogger } from '../log.js';
import { Runtime } from '../runtime.js';
import { loadSettings } from '../settings.js';
import type { CliContext } from './context.js';

/**
 * The audit actor of a `rekey` command: `cli:<OS user>` (src/api/actors.ts). An account without a
 * name (a container's arbitrary uid, where os.userInfo() throws) is named by its uid.
 */
export function cliActor(user: () => { username: string } = userInfo): string {
  try {
    const { username } = user();
    if (username) return `cli:${username}`;
  } catch {
    // no passwd entry: the uid below
  }
  return `cli:uid=${process.getuid?.() ?? 'unknown'}`;
}

/** Runs a command with a Runtime (logging warnings to stderr) acting as {@link cliActor}, and always closes it. */
export async function withRuntime<T>(ctx: CliContext, fn: (runtime: Runtime) => Promise<T>): Promise<T> {
  const settings = loadSettings();
  const log = createLogger(process.env.LOG_LEVEL ? settings.logLevel : 'warn', humanStderr);
  const runtime = new Runtime({ actor: cliActor(), modules: ctx.modules, settings, log });
  try {
    return await fn(runtime);
  } finally {
    await runtime.close();
  }
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' };

/**
 * A short CLI command's log lines, for a person: `rekey: warning: leak report (secret=k outcome=rotating)`
 * on stderr, never JSON mixed into the command's output. The line is pino's, so redaction already applied.
 */
const humanStderr: DestinationStream = {
  write(line: string): void {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      process.stderr.write(line);
      return;
    }
    const { level, msg, time: _time, service: _service, pid: _pid, hostname: _hostname, ...fields } = entry;
    const detail = Object.entries(fields)
      .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
      .join(' ');
    process.stderr.write(`rekey: ${LEVELS[level as number] ?? 'log'}: ${String(msg)}${detail ? ` (${detail})` : ''}\n`);
  },
};
