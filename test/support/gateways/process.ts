// Real gateway processes for tests and benchmarks: spawned directly (no systemd), on
// loopback ports, tracked by PID and stopped by PID, also when the test process exits.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const running = new Set<ChildProcess>();
process.once('exit', () => {
  // Last resort when afterAll did not run (a crash, a timeout): synchronous kills only.
  for (const child of running) if (child.pid) killUnlessGone(child.pid, 'SIGKILL');
});

/** SIGKILLs `child` if it is still running when this process exits (a crash, Ctrl-C). */
export function killOnExit(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

/**
 * Sends `signal` to `pid`; a process that is already gone (ESRCH) is what a kill meant to bring
 * about, so that alone is not an error. Anything else (EPERM, a bad signal) is thrown.
 */
export function killUnlessGone(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

export { freePort } from '../../../src/cli/demo-gateway.js';

/** A private temp directory, removed by the returned function. */
export async function tempDir(label: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `rekey-${label}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export interface Spawned {
  pid: number;
  /** Everything the process wrote so far (for failure messages). */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
  /** Resolves with the exit code when the process exits on its own. */
  exited: Promise<number | null>;
}

/** Starts a program in the foreground and tracks it until it exits. */
export function start(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Spawned {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (!child.pid) throw new Error(`could not start ${command}`);
  killOnExit(child);
  let output = '';
  const append = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', resolve);
  });
  const pid = child.pid;
  return {
    pid,
    output: () => output,
    exited,
    async stop(graceMs = 3000) {
      if (!running.has(child)) return;
      killUnlessGone(pid, 'SIGTERM');
      const timer = setTimeout(() => killUnlessGone(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Resolves once `process` (or a process it started) accepts TCP connections on the port; rejects
 * when it exits or time runs out. A connection alone is not enough: the port was picked before the
 * process bound it, and another test's process that took it in between would answer for one that
 * then fails to bind and exits (its unix sockets left refusing), so the listener's owner is checked.
 */
export async function waitForPort(port: number, process: Spawned, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void process.exited.then(() => (exited = true));
  for (;;) {
    if (exited) throw new Error(`process ${process.pid} exited before listening on ${port}:\n${process.output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (open) {
      if (await listensAs(port, process.pid)) return;
      throw new Error(`127.0.0.1:${port} is held by another process than ${process.pid} (taken after it was picked)`);
    }
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs}ms:\n${process.output()}`);
    await sleep(20);
  }
}

/** Whether a listening TCP socket on `port` (IPv4, or IPv6 as `[::]` takes both) is open in `pid` or one of its descendants (Linux /proc). */
async function listensAs(port: number, pid: number): Promise<boolean> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const tables = await Promise.all(['/proc/net/tcp', '/proc/net/tcp6'].map((file) => readFile(file, 'utf8').catch(() => '')));
  const rows = tables.flatMap((table) => table.split('\n').slice(1));
  // Columns: sl, local address, remote address, state (0A: LISTEN), …, inode (the tenth).
  const inodes = new Set(rows.map((row) => row.trim().split(/\s+/)).filter((f) => f[1]?.endsWith(hex) && f[3] === '0A').map((f) => `socket:[${f[9]}]`));
  for (const owner of await family(pid)) {
    const fds = await readdir(`/proc/${owner}/fd`).catch(() => [] as string[]);
    for (const fd of fds) if (inodes.has(await readlink(`/proc/${owner}/fd/${fd}`).catch(() => ''))) return true;
  }
  return false;
}

/** `pid` and every process descending from it (a master's workers), from each process's parent in /proc. */
async function family(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid …: comm may hold spaces and parentheses, so read after its last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid) parents.set(Number(entry), ppid);
  }
  const found = [pid];
  for (let i = 0; i < found.length; i++) for (const [child, parent] of parents) if (parent === found[i]) found.push(child);
  return found;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A gateway process started by {@link launchOnFreePorts}. */
export interface Supervised {
  /** The running process (a new one after each restart). */
  process: () => Spawned;
  /** Stops the process and starts it again with the same config and ports. */
  restart: () => Promise<void>;
  /** Stops the process and removes `dir`. */
  stop: () => Promise<void>;
}

/**
 * Ports are picked before the gateway binds them, so another test may take one in
 * between: `configure` (pick ports, write the config), `spawn` and `ready` (wait for its
 * ports) are tried up to three times, stopping the process after each failure; if every
 * try fails, `dir` is removed and the error thrown.
 */
export async function launchOnFreePorts(
  dir: { remove(): Promise<void> },
  configure: () => Promise<void>,
  spawn: () => Spawned,
  ready: (proc: Spawned) => Promise<void>,
): Promise<Supervised> {
  let proc: Spawned | undefined;
  const up = async () => {
    proc = spawn();
    await ready(proc);
  };
  for (let tries = 1; ; tries++) {
    try {
      await configure();
      await up();
      break;
    } catch (error) {
      await proc?.stop();
      if (tries < 3) continue;
      await dir.remove();
      throw error;
    }
  }
  return {
    process: () => proc!,
    restart: async () => {
      await proc?.stop();
      await up();
    },
    stop: async () => {
      await proc?.stop();
      await dir.remove();
    },
  };
}
