// Real gateway processes for tests and benchmarks: spawned directly (no systemd), on
// loopback ports, tracked by PID and stopped by PID, also when the test process exits.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const running = new Set<ChildProcess>();
process.once('exit', () => {
  // Last resort when afterAll did not run (a crash, a timeout): synchronous kills only.
  for (const child of running) if (child.pid) tryKill(child.pid, 'SIGKILL');
});

/** SIGKILLs `child` if it is still running when this process exits (a crash, Ctrl-C). */
export function killOnExit(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
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
      tryKill(pid, 'SIGTERM');
      const timer = setTimeout(() => tryKill(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resolves once something accepts TCP connections on the port; rejects when `alive` fails or time runs out. */
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
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs}ms:\n${process.output()}`);
    await sleep(20);
  }
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
