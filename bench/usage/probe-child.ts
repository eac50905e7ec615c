// bench/usage's latency probe, in a process of its own: neither the usage check (parsing the
// tables, fingerprinting, PostgreSQL) nor the load generator stalls its event loop while a
// request is timed. Driven over IPC: { rounds } (replies { samples }: per gateway, per round).
import { latencyRounds } from './probe.js';

type Message = { op: 'rounds'; gateways: Array<{ url: string; header: string }>; key: string; rounds: number; perRound: number };

process.on('message', (message: Message) => {
  void latencyRounds(message.gateways, message.key, message.rounds, message.perRound).then(
    (samples) => process.send!({ op: 'samples', samples }),
    (error: Error) => process.send!({ op: 'samples', error: error.message }),
  );
});
process.on('disconnect', () => process.exit(0));
