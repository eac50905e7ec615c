// keyedLoad (keyed-load.ts) in a process of its own, driven by keyedLoadProcess
// (keyed-load-process.ts) over IPC: { start }, { set }, { sync } (replies { synced } once every
// report before it was sent), { stop } (replies { stopped } after the last answer, then exits).
// Its reports go to the parent in batches, one a tick, so a busy parent reads them in a few
// messages however late it gets to them; their times are this process's, taken as it went.
import { keyedLoad, type KeyedLoad, type KeyedLoadOptions, type KeyedStream, type LoadReport } from './keyed-load.js';

export type ToChild = { op: 'start'; options: Omit<KeyedLoadOptions, 'report'> } | { op: 'set'; stream: KeyedStream } | { op: 'sync'; id: number } | { op: 'stop' };
export type FromChild = { op: 'started' } | { op: 'reports'; reports: LoadReport[] } | { op: 'synced'; id: number } | { op: 'stopped' };

const send = (message: FromChild) => process.send!(message);
let batch: LoadReport[] = [];
const flush = () => {
  if (batch.length) send({ op: 'reports', reports: batch });
  batch = [];
};
let load: KeyedLoad | undefined;
let timer: NodeJS.Timeout | undefined;
process.on('message', (message: ToChild) => {
  if (message.op === 'start') {
    load = keyedLoad({ ...message.options, report: (entry) => batch.push(entry) });
    timer = setInterval(flush, message.options.tickMs ?? 100);
    send({ op: 'started' });
  } else if (message.op === 'set') load?.set(message.stream);
  else if (message.op === 'sync') {
    flush();
    send({ op: 'synced', id: message.id });
  } else
    void load?.stop().then(() => {
      clearInterval(timer);
      flush();
      send({ op: 'stopped' });
      process.disconnect();
    });
});
// The test ended (or died) without a stop: do not outlive it.
process.on('disconnect', () => process.exit(0));
