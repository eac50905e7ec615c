// keyedLoad (keyed-load.ts) sent from a child process (keyed-load-child.ts), for a test whose own
// process also runs what it measures (an API and a rekey worker): starved, one process would both
// send late and answer late, so a rule's window would hold less than the rate the test set. The
// child sends on its own event loop, stamps each request's sending and answer with its own clock,
// and reports them here in batches; answers(), errors() and sent() read this process's copy of
// them, as recent as the last batch read (synced() waits for everything reported so far).
// bench/usage sends with it too: to several gateways at once, and with the reports off.
import { fork, type ChildProcess } from 'node:child_process';
import { childCommand } from '../children.js';
import type { FromChild, ToChild } from './keyed-load-child.js';
import { LoadTally, type KeyedLoad, type KeyedLoadOptions } from './keyed-load.js';
import { killOnExit } from './process.js';

export interface KeyedLoadProcess extends KeyedLoad {
  /** Resolves once every request the child had sent or seen end when asked is in answers(), errors() and sent(). */
  synced(): Promise<void>;
  /** The child's pid. */
  pid: number;
}

export interface KeyedLoadProcessOptions extends Omit<KeyedLoadOptions, 'report' | 'url'> {
  /** The gateway, or several: each gets every stream (a keyedLoad of its own in the child). */
  url: string | string[];
  /**
   * Off: the child reports nothing, and answers(), errors() and sent() stay empty; bench/usage measures
   * this process's CPU, which reading a report of every request would add to. Several urls need it
   * off: a report does not say which gateway answered.
   * @defaultValue true
   */
  reports?: boolean;
}

const CHILD = 'test/support/gateways/keyed-load-child.ts';

/**
 * Starts the child and its load (the options of keyedLoad); resolves once it is sending. Reading
 * the load after the child died throws, naming its exit and the end of its stderr.
 */
export async function keyedLoadProcess(o: KeyedLoadProcessOptions): Promise<KeyedLoadProcess> {
  const { url, reports = true, ...options } = o;
  const urls = typeof url === 'string' ? [url] : url;
  if (urls.length !== 1 && reports) throw new Error('keyedLoadProcess: several urls need reports: false (a report does not say which gateway answered)');
  const tally = new LoadTally(o.historyMs ?? 600_000);
  const { module, execArgv } = childCommand(CHILD);
  const child: ChildProcess = fork(module, [], { execArgv, stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
  killOnExit(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  let stopping = false;
  let died: Error | undefined;
  const waiters = new Map<string, (message: FromChild) => void>();
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      if (!stopping) died = new Error(`the load generator (pid ${child.pid}) exited (${signal ?? code}) before it was stopped:\n${stderr}`);
      for (const waiter of waiters.values()) waiter({ op: 'stopped' });
      resolve();
    }),
  );
  child.on('message', (message: FromChild) => {
    if (message.op === 'reports') {
      for (const entry of message.reports) {
        if (entry[0] === 'sent') tally.started(entry[1], entry[2]);
        else tally.ended(entry[1], entry[2], entry[3], entry[4], entry[5]);
      }
    }
    const key = message.op === 'synced' ? `synced:${message.id}` : message.op;
    waiters.get(key)?.(message);
  });
  const ask = (message: ToChild, reply: string) =>
    new Promise<void>((resolve, reject) => {
      if (died) return reject(died);
      waiters.set(reply, () => {
        waiters.delete(reply);
        if (died) reject(died);
        else resolve();
      });
      child.send(message);
    });
  const alive = () => {
    if (died) throw died;
  };
  await ask({ op: 'start', options: { ...options, urls, reports } }, 'started');
  let syncs = 0;
  return {
    pid: child.pid!,
    set: (stream) => {
      alive();
      child.send({ op: 'set', stream } satisfies ToChild);
    },
    answers: (key) => (alive(), tally.answers(key)),
    errors: (key) => (alive(), tally.errors(key)),
    sent: (key) => (alive(), tally.sent(key)),
    synced: () => {
      const id = ++syncs;
      return ask({ op: 'sync', id }, `synced:${id}`);
    },
    async stop() {
      if (died || stopping) return;
      stopping = true;
      // Its last reports come before its stopped (one channel, in order), so they are counted when this resolves.
      await ask({ op: 'stop' }, 'stopped');
      await exited;
    },
  };
}
