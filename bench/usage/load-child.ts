// bench/usage's traffic, in a process of its own so the rekey process's CPU is measured alone:
// the same noisy per-key streams (test/support/gateways/keyed-load.ts) sent to each of the
// given gateways. Driven over IPC: { start }, { set }, { answers } (replies { answers }), { stop }.
import { keyedLoad, type KeyedLoad, type KeyedStream } from '../../test/support/gateways/keyed-load.js';

type Message =
  | { op: 'start'; urls: string[]; header: string; streams: KeyedStream[] }
  | { op: 'set'; stream: KeyedStream }
  | { op: 'answers'; key: string }
  | { op: 'stop' };

let loads: KeyedLoad[] = [];
process.on('message', (message: Message) => {
  if (message.op === 'start') {
    loads = message.urls.map((url) => keyedLoad({ url, header: message.header, streams: message.streams, maxInFlight: 2048 }));
    process.send!({ op: 'started' });
  } else if (message.op === 'set') for (const load of loads) load.set(message.stream);
  else if (message.op === 'answers') process.send!({ op: 'answers', answers: loads.map((l) => Object.fromEntries(l.answers(message.key))) });
  else void Promise.all(loads.map((l) => l.stop())).then(() => process.exit(0));
});
// The bench ended (or died) without a stop: do not outlive it.
process.on('disconnect', () => process.exit(0));
