/**
 * Talking to a running nginx: `nginx -t` against the real config, and a reload (SIGHUP to
 * the master) that returns only once the new configuration serves every new request.
 *
 * Why wait: on SIGHUP the master starts a new generation of workers and tells the old
 * ones to shut down gracefully; an old worker keeps serving the requests it already
 * read, with the old map. rekey promotes a key right after deploy and verify, so deploy
 * must not return while an old worker can still take a new request. Linux /proc shows
 * each worker's title: "nginx: worker process" or "... is shutting down" (it has closed
 * its listening sockets and idle keep-alive connections).
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';

export interface NginxProcessOptions {
  binary: string;
  config: string;
  prefix: string | undefined;
  pidFile: string;
  reloadTimeoutMs: number;
  drainTimeoutMs: number;
}

/** Runs `nginx -t`; resolves with whether the config passed and what nginx printed. */
export function testConfig(o: NginxProcessOptions, signal: AbortSignal): Promise<{ ok: boolean; output: string }> {
  const args = ['-t', '-q', '-c', o.config, ...(o.prefix ? ['-p', o.prefix] : [])];
  return new Promise((resolve, reject) => {
    execFile(o.binary, args, { signal, timeout: 30_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (!error) return resolve({ ok: true, output });
      // A non-zero exit is nginx's verdict; anything else (ENOENT, abort) is ours.
      if (typeof error.code === 'number') return resolve({ ok: false, output });
      reject(Object.assign(new Error('nginx -t could not run', { cause: error }), { code: error.code }));
    });
  });
}

interface Worker {
  pid: number;
  shuttingDown: boolean;
}

/** Reload failures, with the code the target maps them to. */
export class ReloadError extends Error {
  constructor(
    message: string,
    readonly kind: 'not-running' | 'denied' | 'timeout',
  ) {
    super(message);
    this.name = 'ReloadError';
  }
}

/**
 * Sends SIGHUP to the master and waits until (1) a new worker generation runs and no old
 * worker still accepts requests, then (2) up to drainTimeoutMs for the old workers to exit.
 * @returns how many old workers were still draining when it gave up waiting (usually 0).
 */
export async function reload(o: NginxProcessOptions, signal: AbortSignal): Promise<{ draining: number }> {
  const master = await readMasterPid(o.pidFile);
  const before = new Set((await workers(master)).filter((w) => !w.shuttingDown).map((w) => w.pid));
  try {
    process.kill(master, 'SIGHUP');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EPERM') throw new ReloadError(`no permission to signal the nginx master (pid ${master})`, 'denied');
    throw new ReloadError(`the nginx master (pid ${master}) is not running`, 'not-running');
  }
  const started = Date.now();
  for (;;) {
    signal.throwIfAborted();
    const now = await workers(master);
    const fresh = now.some((w) => !before.has(w.pid) && !w.shuttingDown);
    const oldServing = now.some((w) => before.has(w.pid) && !w.shuttingDown);
    if (fresh && !oldServing) break;
    if (Date.now() - started > o.reloadTimeoutMs) {
      throw new ReloadError(`nginx did not start workers on the new configuration within ${o.reloadTimeoutMs}ms; its error log says why`, 'timeout');
    }
    await pause(5);
  }
  const drainDeadline = Date.now() + o.drainTimeoutMs;
  for (;;) {
    const draining = (await workers(master)).filter((w) => before.has(w.pid)).length;
    if (draining === 0 || Date.now() > drainDeadline) return { draining };
    await pause(5);
  }
}

async function readMasterPid(pidFile: string): Promise<number> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new ReloadError(`nginx is not running (no PID in ${pidFile})`, 'not-running');
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EPERM') throw new ReloadError(`no permission to signal the nginx master (pid ${pid})`, 'denied');
    throw new ReloadError(`nginx is not running (pid ${pid} from ${pidFile} is gone)`, 'not-running');
  }
  return pid;
}

/** The master's worker processes with their titles (cache manager/loader are not workers). */
async function workers(master: number): Promise<Worker[]> {
  const found: Worker[] = [];
  for (const pid of await children(master)) {
    const title = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
    if (!title.includes('worker process')) continue;
    found.push({ pid, shuttingDown: title.includes('shutting down') });
  }
  return found;
}

async function children(master: number): Promise<number[]> {
  // One read when the kernel has CONFIG_PROC_CHILDREN; otherwise scan /proc for the parent.
  const listed = await readFile(`/proc/${master}/task/${master}/children`, 'utf8').catch(() => undefined);
  if (listed !== undefined) return listed.split(/\s+/).filter(Boolean).map(Number);
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // The command name is in parentheses and may hold spaces: the fields follow the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === master) pids.push(Number(name));
  }
  return pids;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
