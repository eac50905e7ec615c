/** `rekey agent` (src/cli/commands/agent.ts): options to a running agent, its log as JSON lines of codes on stderr. */
import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { open, readFile, writeFile, type FileHandle } from 'node:fs/promises';
import { constants as os } from 'node:os';
import type { AgentFlags } from '../cli/commands/agent.js';
import type { CliContext } from '../cli/context.js';
import { ExitCode } from '../cli/context.js';
import { startAgent, type AgentLogEvent, type PidRefusal } from './agent.js';
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
  const logger = (event: AgentLogEvent) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
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
    onRevoke: flags.onRevoke,
    notify: flags.pidFile ? { pid: pidFrom(flags.pidFile, (reason) => logger({ code: 'agent_pid_refused', reason })), signal: flags.signal as NodeJS.Signals } : undefined,
    logger,
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

/** A pid file is a few digits: what is read of one, so a large file planted there costs nothing. */
const PID_FILE_MAX_BYTES = 64;

/**
 * The pid `path` holds, when the process that has it may be signalled: the agent (often root) must
 * not send its signal (SIGHUP ends a process by default) where the file's writer could not. So the
 * pid is named only when
 * - `path` is a regular file (not a link: not followed; not a FIFO: not waited on) with one name
 *   (a hard link to another user's pid file is not that user's writing), that no group or other
 *   user may write;
 * - the process's real uid (/proc/<pid>/status) is the file's owner: a file planted by one user
 *   names no process of another's (pid 1, another container's in a shared pid namespace);
 * - the process did not start after the file was last written: then the writer has exited (a
 *   crash leaves its pid file) and the kernel gave its pid to another process.
 * Checked and read through one descriptor, so the file checked is the file read. A refusal is
 * told to `refused` by its reason, never with what the file holds; a missing file, or one that
 * holds no pid (the process not started yet), is no refusal. Without /proc nothing is signalled.
 */
export function pidFrom(path: string, refused: (reason: PidRefusal) => void = () => {}): () => Promise<number | undefined> {
  return async () => {
    const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ELOOP') refused('not_regular_file');
      return undefined;
    });
    if (!file) return undefined;
    let text: string, stats: Stats;
    try {
      stats = await file.stat();
      const refusal = !stats.isFile() ? 'not_regular_file' : stats.mode & 0o022 ? 'writable_by_others' : stats.nlink !== 1 ? 'hard_linked' : undefined;
      if (refusal) return void refused(refusal);
      const buffer = Buffer.alloc(PID_FILE_MAX_BYTES);
      const { bytesRead } = await file.read(buffer, 0, PID_FILE_MAX_BYTES, 0);
      text = buffer.subarray(0, bytesRead).toString('utf8');
    } catch {
      return undefined;
    } finally {
      await file.close();
    }
    const pid = /^\s*\d{1,10}\s*$/.test(text) ? Number(text.trim()) : NaN;
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    const [uid, started] = await Promise.all([realUid(pid), startedAt(pid)]);
    if (uid === undefined) return void refused('no_process');
    if (uid !== stats.uid) return void refused('other_owner');
    if (started !== undefined && started > stats.mtimeMs + START_SLACK_MS) return void refused('started_after_written');
    return pid;
  };
}

/** The real uid of process `pid`, from /proc/<pid>/status; undefined when there is no such process, or no /proc. */
async function realUid(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  const uid = status === undefined ? undefined : /^Uid:\s+(\d+)\s/m.exec(status)?.[1];
  return uid === undefined ? undefined : Number(uid);
}

/** /proc/stat's boot time has whole seconds, and a wall clock stepped since boot moves the reckoning by as much. */
const START_SLACK_MS = 2_000;
/** Linux's USER_HZ, the unit of /proc/<pid>/stat's start time: 100 on every architecture a container runs on. */
const CLOCK_TICKS_PER_S = 100;

/** When process `pid` started (Date.now() terms), from /proc; undefined where it cannot be read there (pidFrom() then finds no uid either, and signals nothing) or its format is not understood. */
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
