// keyedLoad (keyed-load.ts) in a process of its own, driven by keyedLoadProcess
// (keyed-load-process.ts) over IPC: { start }, { set }, { sync } (replies { synced } once every
// report before it was sent), { stop } (replies { stopped } after the last answer, then exits).
// One keyedLoad per gateway it is given, each sending every stream (bench/usage drives three).
// Its reports go to the parent in batches, one a tick, so a busy parent reads them in a few
// messages however late it gets to them; their times are this process's, taken as it went.
import { keyedLoad, type KeyedLoad, type KeyedLoadOptions, type KeyedStream, type LoadReport } from './keyed-load.js';

/** keyedLoad's options for each of `urls`; `reports` off: nothing is reported. */
export type ChildLoadOptions = Omit<KeyedLoadOptions, 'report' | 'url'> & { urls: string[]; reports: boolean };
export type ToChild = { op: 'start'; options: ChildLoadOptions } | { op: 'set'; stream: KeyedStream } | { op: 'sync'; id: number } | { op: 'stop' };
export type FromChild = { op: 'started' } | { op: 'reports'; reports: LoadReport[] } | { op: 'synced'; id: number } | { op: 'stopped' };

const send = (message: FromChild) => process.send!(message);
let batch: LoadReport[] = [];
const flush = () => {
  if (batch.length) send({ op: 'reports', reports: batch });
  batch = [];
};
let loads: KeyedLoad[] = [];
let timer: NodeJS.Timeout | undefined;
process.on('message', (message: ToChild) => {
  if (message.op === 'start') {
    const { urls, reports, ...options } = message.options;
    const report = reports ? (entry: LoadReport) => void batch.push(entry) : undefined;
    loads = urls.map((url) => keyedLoad({ ...options, url, report }));
    if (reports) timer = setInterval(flush, options.tickMs ?? 100);
    send({ op: 'started' });
  } else if (message.op === 'set') for (const load of loads) load.set(message.stream);
  else if (message.op === 'sync') {
    flush();
    send({ op: 'synced', id: message.id });
  } else
    void Promise.all(loads.map((load) => load.stop())).then(() => {
      clearInterval(timer);
      flush();
      send({ op: 'stopped' });
      process.disconnect();
    });
});
// The test ended (or died) without a stop: do not outlive it.
process.on('disconnect', () => process.exit(0));
