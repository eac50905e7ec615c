/**
 * The soak's rekey processes: three `rekey worker`s and one `rekey server`, spawned from
 * src/cli/main.ts with the real provider registry, each one's output appended to a log
 * file of its own (searched for plaintext values at the end). SIGKILLed and restarted, or
 * frozen (SIGSTOP) and woken, by the fault injector.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childCommand } from '../../test/support/children.js';
import { killOnExit, sleep } from '../../test/support/gateways/process.js';

const entry = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
/**
 * Under test/soak/soak.test.ts, the JavaScript build the tests' rekey processes run (test/support/children.ts:
 * the same code, without tsx's second and more per start that each of the fleet's starts and restarts would pay);
 * `npm run bench -- soak` runs the sources through tsx.
 */
const command = () => {
  const { module, execArgv } = childCommand(entry);
  return [...execArgv, module];
};

export class RekeyProcess {
  private child: ChildProcess | undefined;
  private readonly log: WriteStream;
  private tail = '';
  /** Called when the process exits although nobody killed it (a crash). */
  onCrash: ((code: number | null) => void) | undefined;
  private expectExit = false;
  /** The health/metrics URL the current incarnation printed. */
  url: string | undefined;
  starts = 0;

  constructor(
    readonly name: string,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
    dir: string,
  ) {
    this.logFile = join(dir, `${name}.log`);
    this.log = createWriteStream(this.logFile, { flags: 'a' });
  }

  readonly logFile: string;

  get alive(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Spawns the process and waits for its `rekey started` line. */
  async start(timeoutMs = 60_000): Promise<void> {
    this.starts += 1;
    this.url = undefined;
    this.tail = '';
    const child = spawn(process.execPath, [...command(), ...this.args], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.expectExit = false;
    killOnExit(child);
    child.once('exit', (code) => {
      if (!this.expectExit && this.url) this.onCrash?.(code);
    });
    const onData = (chunk: Buffer) => {
      this.log.write(chunk);
      if (!this.url) {
        this.tail = (this.tail + chunk.toString()).slice(-20_000);
        const match = /"url":"(http:\/\/[^"]+)".*"msg":"rekey started"/.exec(this.tail);
        if (match) this.url = match[1]!.replace('0.0.0.0', '127.0.0.1');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const deadline = Date.now() + timeoutMs;
    while (!this.url) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${this.name} exited before it started:\n${this.tail.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not start within ${timeoutMs} ms:\n${this.tail.slice(-3000)}`);
      await sleep(50);
    }
  }

  /** Sends a signal and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 30_000): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    this.expectExit = true;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /**
   * Freezes the process (SIGSTOP: no timer, renewal or socket read runs) for `ms`, then wakes it
   * (SIGCONT) where it stopped, its connections still open.
   */
  async freeze(ms: number): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    child.kill('SIGSTOP');
    await sleep(ms);
    child.kill('SIGCONT');
  }

  async close(): Promise<void> {
    await this.kill('SIGTERM', 15_000);
    await new Promise<void>((resolve) => this.log.end(resolve));
  }
}

export interface FleetOptions {
  dir: string;
  env: NodeJS.ProcessEnv;
  workers: number;
  serverPort: number;
}

export class Fleet {
  readonly workers: RekeyProcess[];
  readonly server: RekeyProcess;

  constructor(options: FleetOptions) {
    this.workers = Array.from(
      { length: options.workers },
      (_, i) =>
        new RekeyProcess(
          `worker-${i + 1}`,
          // Short locks so a killed worker's jobs restart within seconds; reconcile often enough
          // that a lost queue is rebuilt quickly, not so often that 200 secrets keep Redis busy.
          ['worker', '--port', '0', '--lock-duration', '5s', '--reconcile-interval', '5s'],
          options.env,
          options.dir,
        ),
    );
    this.server = new RekeyProcess('server', ['server', '--port', String(options.serverPort)], options.env, options.dir);
  }

  get all(): RekeyProcess[] {
    return [...this.workers, this.server];
  }

  async start(): Promise<void> {
    await Promise.all(this.all.map((p) => p.start(120_000)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.all.map((p) => p.close()));
  }
}
