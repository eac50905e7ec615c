// Gateway latency with as little client in the way as possible: one keep-alive socket per
// gateway, one request at a time written as raw bytes, timed from the write to the end of the
// answer (Content-Length body). Gateways are probed in turn, so both see the same machine load.
import { connect, type Socket } from 'node:net';

interface Probe {
  send(): Promise<number>;
  close(): void;
}

async function probe(url: string, header: string, key: string): Promise<Probe> {
  const { hostname, port } = new URL(url);
  const socket: Socket = connect({ host: hostname, port: Number(port), noDelay: true });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${hostname}\r\n${header}: ${key}\r\n\r\n`);
  let buffer = '';
  let waiting: ((ms: number) => void) | undefined;
  let started = 0n;
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    const end = buffer.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = buffer.slice(0, end);
    // The backend answers chunked (ends with an empty chunk) or with a Content-Length.
    const length = /transfer-encoding: *chunked/i.test(head) ? buffer.indexOf('\r\n0\r\n\r\n', end) + 7 - (end + 4) : Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (length < 0 || buffer.length < end + 4 + length) return;
    const status = buffer.slice(9, 12);
    buffer = buffer.slice(end + 4 + length);
    const done = waiting!;
    waiting = undefined;
    done(status === '200' ? Number(process.hrtime.bigint() - started) / 1e6 : NaN);
  });
  return {
    send: () =>
      new Promise<number>((resolve) => {
        waiting = resolve;
        started = process.hrtime.bigint();
        socket.write(request);
      }),
    close: () => socket.destroy(),
  };
}

/**
 * `rounds` rounds of `perRound` requests to each gateway, alternating between them request by
 * request (the order turning each time); returns each gateway's samples per round. Per-round
 * figures let a reader compare gateways round by round, so a stall of the machine during one
 * round shifts that round's figures for every gateway alike instead of one gateway's pool.
 */
export async function latencyRounds(gateways: Array<{ url: string; header: string }>, key: string, rounds: number, perRound: number): Promise<number[][][]> {
  const probes = await Promise.all(gateways.map((g) => probe(g.url, g.header, key)));
  const samples = gateways.map(() => [] as number[][]);
  try {
    for (let i = 0; i < 200; i++) for (const p of probes) await p.send(); // warm-up
    for (let r = 0; r < rounds; r++) {
      const round = gateways.map(() => [] as number[]);
      for (let i = 0; i < perRound; i++) {
        const shift = (r * perRound + i) % probes.length;
        for (let k = 0; k < probes.length; k++) {
          const g = (k + shift) % probes.length;
          const ms = await probes[g]!.send();
          if (Number.isNaN(ms)) throw new Error(`${gateways[g]!.url} did not answer 200`);
          round[g]!.push(ms);
        }
      }
      round.forEach((xs, g) => samples[g]!.push(xs));
    }
  } finally {
    for (const p of probes) p.close();
  }
  return samples;
}
