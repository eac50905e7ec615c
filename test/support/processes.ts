/** Child `rekey` processes for tests: spawn with the test providers, stop by PID. */
import { type ChildProcess, spawn } from 'node:child_process';
import { childArgs } from './children.js';
import { killOnExit } from './gateways/process.js';

const entry = 'test/support/rekey-cli.ts';

export interface Child {
  process: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export function spawnRekey(args: string[], env: NodeJS.ProcessEnv): Child {
  // The IPC channel is the child's lifeline: rekey-cli.ts exits when it closes, so a test
  // process that dies without cleaning up (a killed vitest worker) leaves no orphan behind.
  const child = spawn(process.execPath, [...childArgs(entry), ...args], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  killOnExit(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { process: child, output: () => output, exited };
}

/** A worker process on a random health port with short locks, so a killed worker's jobs restart quickly. */
export function spawnWorker(env: NodeJS.ProcessEnv, extra: string[] = []): Child {
  return spawnRekey(workerArgs(extra), env);
}

const workerArgs = (extra: string[]) => ['worker', '--port', '0', '--lock-duration', '1s', '--reconcile-interval', '1s', ...extra];

/**
 * A worker process started ahead of need: node and the modules `rekey worker` loads are loaded,
 * nothing else (no setting read, no connection). `start()` lets it run `rekey worker` and waits
 * for it to be up, as spawnWorker() and waitForOutput() do, without the second or two a process
 * takes to load on a loaded machine: a test that restarts workers keeps the next one spare.
 */
export interface Spare {
  start(): Promise<Child>;
  /** Stops it if start() was never called (afterAll). */
  discard(): Promise<void>;
}

export function spareWorker(env: NodeJS.ProcessEnv, extra: string[] = []): Spare {
  const child = spawnRekey(['--spare', ...workerArgs(extra)], env);
  const ready = new Promise<void>((resolve, reject) => {
    child.process.once('message', () => resolve());
    void child.exited.then((code) => reject(new Error(`spare worker exited ${code} before it was started:\n${child.output()}`)));
  });
  ready.catch(() => undefined); // reported by start(), if it is called
  let started = false;
  return {
    async start() {
      started = true;
      await ready;
      child.process.send('start');
      await waitForOutput(child, /rekey started/);
      return child;
    },
    async discard() {
      if (!started && child.process.exitCode === null && child.process.signalCode === null) await kill(child);
    },
  };
}

export async function kill(child: Child, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
  child.process.kill(signal);
  return child.exited;
}

/** Waits for `pattern` in the child's output. The default is a hang guard: a process starting on a loaded machine can take tens of seconds. */
export async function waitForOutput(child: Child, pattern: RegExp, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(child.output())) {
    if (Date.now() > deadline) throw new Error(`no ${pattern} in child output:\n${child.output()}`);
    if (child.process.exitCode !== null) throw new Error(`child exited ${child.process.exitCode}:\n${child.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `rekey ARGS` as a child process to the end: exit code, stdout and stderr apart. `stdin` is written and closed. */
export async function runRekey(args: string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<ProcessResult> {
  const child = spawn(process.execPath, [...childArgs(entry), ...args], { env, stdio: ['pipe', 'pipe', 'pipe', 'ipc'] });
  killOnExit(child);
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (chunk: Buffer) => (out.stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out.stderr += chunk.toString()));
  child.stdin!.end(stdin);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, ...out };
}
