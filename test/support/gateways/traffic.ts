// Requests through a gateway: one-off, and a client that keeps sending while a
// rotation runs and counts what the gateway rejected.
import { Agent, request, type RequestOptions } from 'node:http';
import type { Target, VersionRef } from '../../../src/core/ports.js';
import type { SecretValue } from '../../../src/core/secret-value.js';
import { call, held } from '../../conformance/refs.js';
import { sleep } from './process.js';

export interface Answer {
  status: number;
  body: string;
}

/** Sends one GET with `key` in `header` (no header when key is undefined). */
export function send(url: string, header: string, key: string | undefined, agent?: Agent): Promise<Answer> {
  return exchange(url, { method: 'GET', agent: agent ?? false, headers: key === undefined ? {} : { [header]: key } });
}

/**
 * {@link send} as a client asks once: a new connection the gateway reset before answering (Caddy
 * swaps its HTTP servers at every config load, each change of a target's included) is tried once
 * more on another. What the gateway answers is never retried.
 */
export async function ask(url: string, header: string, key: string | undefined): Promise<Answer> {
  try {
    return await send(url, header, key);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ECONNRESET') throw error;
    return send(url, header, key);
  }
}

/**
 * Admin API calls (`call`, reads first, then the write they decide) while Caddy swaps its admin
 * server, as it does at every config load (a drift repair's included): a connection reset or
 * refused meanwhile (twice in a row within 7 ms under a fresh-ci run) runs `call` again, as the
 * caddy target's reads are, for at most 10 s, 100 ms apart. Unlike {@link ask}, whose one retry is
 * what a client does, this waits out the swap; other errors, and any answer, end it at once.
 */
export async function whileSwapping<T>(call: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== 'ECONNRESET' && code !== 'ECONNREFUSED') || Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

/** Sends one JSON body (an admin API call) on a connection of its own: a gateway restarted meanwhile resets no kept-alive socket. */
export function sendJson(url: string, method: string, body: unknown): Promise<Answer> {
  return exchange(url, { method, agent: false, headers: { 'content-type': 'application/json' } }, JSON.stringify(body));
}

function exchange(url: string, options: RequestOptions, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

export interface TrafficStats {
  sent: number;
  accepted: number;
  /** 401/403 answers to a key that was valid when the request was sent. */
  rejected: number;
  /** Requests whose kept-alive connection failed (reset by a reload) and were retried once on a new one. */
  retried: number;
  /** Failures after that retry, and answers other than 200/401/403. */
  errors: number;
  durationMs: number;
}

export interface Traffic {
  /** The key requests carry from now on. */
  setKey(key: string): void;
  /** Resolves when every request sent before this call has been answered. */
  settle(): Promise<void>;
  stop(): Promise<TrafficStats>;
}

/**
 * `workers` loops, each sending a request every `intervalMs` over keep-alive
 * connections (like a real client) with whatever key is current when it sends.
 */
export function continuousTraffic(o: { url: string; header: string; key: string; intervalMs?: number; workers?: number }): Traffic {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const stats: TrafficStats = { sent: 0, accepted: 0, rejected: 0, retried: 0, errors: 0, durationMs: 0 };
  const inFlight = new Set<Promise<unknown>>();
  const started = Date.now();
  let key = o.key;
  let running = true;

  const once = async () => {
    const used = key;
    stats.sent += 1;
    let answer: Answer;
    try {
      answer = await send(o.url, o.header, used, agent);
    } catch {
      // A keep-alive socket the gateway closed at the same instant (a reload): a
      // real client retries an idempotent GET once on a new connection.
      stats.retried += 1;
      try {
        answer = await send(o.url, o.header, used);
      } catch {
        stats.errors += 1;
        return;
      }
    }
    if (answer.status === 200) stats.accepted += 1;
    else if (answer.status === 401 || answer.status === 403) stats.rejected += 1;
    else stats.errors += 1;
  };
  const loop = async () => {
    while (running) {
      const pending = once();
      inFlight.add(pending);
      await pending;
      inFlight.delete(pending);
      await sleep(o.intervalMs ?? 2);
    }
  };
  const loops = Array.from({ length: o.workers ?? 2 }, () => loop());
  return {
    setKey: (next) => (key = next),
    settle: async () => {
      await Promise.all([...inFlight]);
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      stats.durationMs = Date.now() - started;
      return stats;
    },
  };
}

export interface Keyed {
  ref: VersionRef;
  value: SecretValue;
}

/**
 * One rotation in rekey's protocol order, driven through the Target API: deploy the
 * new key, verify it, promote (the client switches to it), let requests still carrying
 * the old key finish (the grace window), then retire the old key.
 */
export async function rotate(target: Target, from: Keyed, to: Keyed, traffic: Traffic, dwellMs = 0): Promise<void> {
  // dwellMs keeps each phase long enough for the client to send requests in it.
  await target.deploy(to.ref, to.value, call());
  await sleep(dwellMs);
  await target.verify(to.ref, to.value, call());
  traffic.setKey(to.value.reveal());
  await sleep(dwellMs);
  await traffic.settle();
  await target.retire(from.ref, call());
  await sleep(dwellMs);
}

/** Retires everything the target lists, so the next test starts from an empty map. */
export async function retireAll(target: Target): Promise<void> {
  for (const entry of await held(target)) {
    if (!entry.fingerprint) continue;
    await target.retire({ secret: 'cleanup', versionId: entry.versionId ?? '', number: 0, fingerprint: entry.fingerprint, consumer: '' }, call());
  }
}
