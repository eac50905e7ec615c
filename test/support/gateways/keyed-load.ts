// Noisy per-key traffic through a gateway, for the usage tests and bench/usage: every tick,
// each key sends about rate x tick requests (uniformly 50-150 % of it), from the source
// addresses it is given (loopback 127.0.N.1: a network per N). A tick never catches up on
// a late one, and requests beyond `maxInFlight` are skipped: a stalled machine sends less,
// never a burst. Counts answers per key and status.
import { Agent, request } from 'node:http';

export interface KeyedStream {
  key: string;
  /** Requests per second. */
  rate: number;
  /** Local addresses to send from, round robin (default: the OS's choice, 127.0.0.1). */
  sources?: string[];
}

export interface KeyedLoad {
  /** Changes a stream's rate and sources from the next tick. */
  set(stream: KeyedStream): void;
  /** Answers so far by key, then by status (0: a transport error). */
  answers(key: string): Map<number, number>;
  /** Stops sending and waits for the requests in flight. */
  stop(): Promise<void>;
}

export function keyedLoad(o: { url: string; header: string; streams: KeyedStream[]; tickMs?: number; maxInFlight?: number }): KeyedLoad {
  const tickMs = o.tickMs ?? 100;
  const maxInFlight = o.maxInFlight ?? 256;
  const streams = new Map(o.streams.map((s) => [s.key, s]));
  const counts = new Map<string, Map<number, number>>();
  const agents = new Map<string, Agent>();
  const agentFor = (source: string | undefined) => {
    const name = source ?? '';
    let agent = agents.get(name);
    // Idle sockets closed after 2 s, before any server's keep-alive timeout (Node's 5 s, HAProxy's
    // 30 s) closes them under a request reusing one: a source unused for a while would see resets.
    if (!agent) agents.set(name, (agent = new Agent({ keepAlive: true, maxSockets: 16, timeout: 2000, ...(source ? { localAddress: source } : {}) })));
    return agent;
  };
  let inFlight = 0;
  let turn = 0;
  const pending = new Set<Promise<void>>();
  const count = (key: string, status: number) => {
    const byStatus = counts.get(key) ?? new Map<number, number>();
    counts.set(key, byStatus);
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  };
  const fire = (stream: KeyedStream) => {
    const sources = stream.sources ?? [undefined];
    const agent = agentFor(sources[turn++ % sources.length]);
    inFlight++;
    const done = new Promise<void>((resolve) => {
      const req = request(o.url, { agent, headers: { [o.header]: stream.key } }, (res) => {
        res.resume();
        res.on('end', () => {
          count(stream.key, res.statusCode ?? 0);
          resolve();
        });
      });
      req.setTimeout(5000, () => req.destroy(new Error('timed out')));
      req.on('error', () => {
        count(stream.key, 0);
        resolve();
      });
      req.end();
    }).finally(() => {
      inFlight--;
      pending.delete(done);
    });
    pending.add(done);
  };
  const timer = setInterval(() => {
    for (const stream of streams.values()) {
      const expected = stream.rate * (tickMs / 1000) * (0.5 + Math.random());
      // Rounded at random, so a rate below one request per tick is kept on average.
      const n = Math.floor(expected) + (Math.random() < expected % 1 ? 1 : 0);
      for (let i = 0; i < n && inFlight < maxInFlight; i++) fire(stream);
    }
  }, tickMs);
  return {
    set: (stream) => void streams.set(stream.key, stream),
    answers: (key) => new Map(counts.get(key) ?? []),
    async stop() {
      clearInterval(timer);
      await Promise.all([...pending]);
      for (const agent of agents.values()) agent.destroy();
    },
  };
}

/**
 * What a key was answered besides `ok`: every other status (a refusal is never tolerated), and
 * transport errors (status 0) beyond two, or one in a hundred requests. A rule's action is an
 * HTTP answer of the gateway (429, 403), never a transport error; those come from the machine:
 * at load 12 one key of the HAProxy usage test met two (its 5 s timeout or a reset) in about
 * 800 requests (fresh-ci, 2026-12-05). A gateway that drops connections fails far more than 1%.
 * Empty when the key kept working.
 */
export function unexpectedAnswers(answers: Map<number, number>, ok = 200): Record<number, number> {
  const total = [...answers.values()].reduce((a, b) => a + b, 0);
  const unexpected = Object.fromEntries([...answers].filter(([status, n]) => status !== ok && (status !== 0 || n > Math.max(2, total / 100))));
  if (!answers.get(ok)) unexpected[ok] = 0;
  return unexpected;
}
