/** `rekey agent` (src/cli/commands/agent.ts): options to a running agent, its log as JSON lines of codes on stderr. */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, writeFile, type FileHandle } from 'node:fs/promises';
import { constants as os } from 'node:os';
import type { AgentFlags } from '../cli/commands/agent.js';
import type { CliContext } from '../cli/context.js';
import { ExitCode } from '../cli/context.js';
import { startAgent } from './agent.js';
import { loadTemplate } from './templates.js';

const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

export async function runAgent(ctx: CliContext, flags: AgentFlags): Promise<void> {
  const file = flags.clientKeyFile ?? flags.tokenFile;
  if (!file || (flags.clientKeyFile && flags.tokenFile)) {
    process.stderr.write('rekey agent: give one of --client-key-file and --token-file\n');
    throw new ExitCode(2);
  }
  // Checked now: a name process.kill() refuses (HUP for SIGHUP) would fail only at the first change, and never signal.
  if (!Object.hasOwn(os.signals, flags.signal)) {
    process.stderr.write(`rekey agent: --signal ${flags.signal} is not a signal name (e.g. SIGHUP, SIGUSR1, SIGTERM)\n`);
    throw new ExitCode(2);
  }
  const agent = await startAgent({
    server: flags.server,
    credential: async () => (await readFile(file, 'utf8')).trim(),
    credentialType: flags.clientKeyFile ? ACCESS_TOKEN_TYPE : undefined,
    requestToken: await requestToken(flags.requestTokenFile).catch((error: unknown) => {
      process.stderr.write(`rekey agent: --request-token-file ${error instanceof Error ? error.message : String(error)}\n`);
      throw new ExitCode(2);
    }),
    port: flags.port,
    secrets: flags.secret,
    audiences: flags.audience,
    templates: await Promise.all(flags.template.map(loadTemplate)),
    notify: flags.pidFile ? { pid: pidFrom(flags.pidFile), signal: flags.signal as NodeJS.Signals } : undefined,
    logger: (event) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`),
  });
  ctx.out(`rekey agent: ${agent.url} (header X-Rekey-Agent-Token)`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await agent.stop();
}

/**
 * The token in `path`, or a new random one written there 0600 when there is no file. An existing
 * file is used only if it is a regular file of this process's user that no other user may read
 * or write: a token another user planted there, or can read, would let that user's processes
 * call the agent on loopback.
 * @throws Error naming what is wrong with the file (the token is never in the message)
 */
export async function requestToken(path: string): Promise<string> {
  let file: FileHandle;
  try {
    // Checked and read through one descriptor, so the file checked is the file read; O_NONBLOCK: a FIFO does not hang the open.
    file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const token = randomBytes(32).toString('base64url');
    await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
    return token;
  }
  try {
    const stats = await file.stat();
    const uid = process.getuid?.();
    if (!stats.isFile()) throw new Error(`${path} is not a regular file`);
    if (uid !== undefined && stats.uid !== uid) throw new Error(`${path} belongs to another user (uid ${stats.uid}): remove it, and the agent writes a new one`);
    if (stats.mode & 0o077) throw new Error(`${path} may be read or written by other users (mode ${(stats.mode & 0o777).toString(8)}): chmod 600 it, or remove it`);
    const token = (await file.readFile('utf8')).trim();
    if (!token) throw new Error(`${path} is empty: remove it, and the agent writes a new one`);
    return token;
  } finally {
    await file.close();
  }
}

/**
 * The pid `path` holds, unless the process that has it now started after the file was last
 * written: then the writer has exited (a crash leaves its pid file) and the kernel gave its pid to
 * another process, which the signal (SIGHUP ends a process by default) must not reach.
 */
export function pidFrom(path: string): () => Promise<number | undefined> {
  return async () => {
    // Read and dated through one descriptor: the file dated is the file read.
    const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch(() => undefined);
    if (!file) return undefined;
    let text: string, written: number;
    try {
      [text, written] = [await file.readFile('utf8'), (await file.stat()).mtimeMs];
    } catch {
      return undefined;
    } finally {
      await file.close();
    }
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const started = await startedAt(pid);
    return started !== undefined && started > written + START_SLACK_MS ? undefined : pid;
  };
}

/** /proc/stat's boot time has whole seconds, and a wall clock stepped since boot moves the reckoning by as much. */
const START_SLACK_MS = 2_000;
/** Linux's USER_HZ, the unit of /proc/<pid>/stat's start time: 100 on every architecture a container runs on. */
const CLOCK_TICKS_PER_S = 100;

/** When process `pid` started (Date.now() terms), from /proc; undefined where there is no /proc (the pid is then signalled unchecked) or no such process. */
async function startedAt(pid: number): Promise<number | undefined> {
  try {
    const [line, boot] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile('/proc/stat', 'utf8')]);
    // Fields after the command name (in parentheses, which may itself hold spaces and parentheses): state is field 3, starttime field 22.
    const ticks = Number(line.slice(line.lastIndexOf(')') + 2).split(' ')[22 - 3]);
    const btime = Number(/^btime (\d+)$/m.exec(boot)?.[1]);
    return Number.isFinite(ticks) && Number.isFinite(btime) ? btime * 1000 + (ticks / CLOCK_TICKS_PER_S) * 1000 : undefined;
  } catch {
    return undefined;
  }
}
