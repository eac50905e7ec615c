// The usage tests' load generator (test/support/gateways/keyed-load.ts): what its status 0 means.
import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { keyedLoad, type KeyedLoad } from '../support/gateways/keyed-load.js';
import { listenLoopback } from '../support/fake-http.js';

let server: ReturnType<typeof createServer> | undefined;
let load: KeyedLoad | undefined;
afterEach(async () => {
  await load?.stop();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
});

describe('keyedLoad', () => {
  it('counts an answer that came while its own event loop stalled past the timeout as the answer, not a transport error', async () => {
    // Under load (15-22 on 2 cores) this process stalls for seconds: the socket's timeout timer
    // then fires in the loop's timers phase, before the poll phase reads the answer waiting in the
    // kernel. The server is in this process: it answers, then this process stalls (busy) past it.
    const TIMEOUT_MS = 200;
    let stalled: (() => void) | undefined;
    const stall = new Promise<void>((resolve) => (stalled = resolve));
    let first = true;
    server = createServer((_req, res) => {
      res.writeHead(200).end('ok');
      if (!first) return;
      first = false;
      load!.set({ key: 'k', rate: 0 });
      const until = Date.now() + 2 * TIMEOUT_MS;
      while (Date.now() < until); // the stall: nothing else runs
      stalled!();
    });
    const port = await listenLoopback(server);
    // One request in flight at most: a second one sent beside the first would meet the stall in
    // this process's server too, its answer written only after its timeout (CI, 2026-12-07: {0: 1, 200: 1}).
    load = keyedLoad({ url: `http://127.0.0.1:${port}/`, header: 'x-api-key', streams: [{ key: 'k', rate: 30 }], tickMs: 100, timeoutMs: TIMEOUT_MS, maxInFlight: 1 });
    await stall;
    await load.stop();
    expect(Object.fromEntries(load.answers('k'))).toEqual({ 200: 1 });
  });

  it('keeps the requests of the last historyMs only, so a long run holds a bounded log', async () => {
    // A run of at least four histories at 100 requests/s: the log then holds about one history's worth.
    const HISTORY_MS = 400;
    let answered = 0;
    let firstAt: number | undefined;
    let spanned: (() => void) | undefined;
    const long = new Promise<void>((resolve) => (spanned = resolve));
    server = createServer((_req, res) => {
      res.writeHead(200).end('ok');
      answered++;
      firstAt ??= Date.now();
      if (Date.now() - firstAt > 4 * HISTORY_MS && answered >= 100) spanned!();
    });
    const port = await listenLoopback(server);
    load = keyedLoad({ url: `http://127.0.0.1:${port}/`, header: 'x-api-key', streams: [{ key: 'k', rate: 100 }], tickMs: 20, historyMs: HISTORY_MS });
    await long;
    const now = Date.now();
    const kept = load.sent('k');
    const sentInAll = [...load.answers('k').values()].reduce((a, b) => a + b, 0) + kept.filter((r) => r.end === undefined).length;
    // Only answered requests older than the history are dropped; whatever is in flight stays.
    const stale = kept.filter((r) => r.end !== undefined && r.start < now - HISTORY_MS);
    expect({ stale: stale.length, keptFewer: kept.length < sentInAll }).toEqual({ stale: 0, keptFewer: true });
    // What it keeps is the recent traffic as sent, in order.
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.every((r, i) => i === 0 || r.start >= kept[i - 1]!.start)).toBe(true);
  });

  it("sends each stream's requests from its own sources in turn, whatever the other streams send", async () => {
    // A usage rule counting networks needs n requests of a key to come from min(n, sources) networks.
    // One tick (1 s): the other stream goes first in it (the first tick starts at the second stream)
    // and sends 1-3 requests; then this key sends 1-3, which must come from its first sources.
    const sources = ['127.0.1.1', '127.0.2.1', '127.0.3.1', '127.0.4.1'];
    const from: string[] = [];
    let sent: (() => void) | undefined;
    const first = new Promise<void>((resolve) => (sent = resolve));
    server = createServer((req, res) => {
      if (req.headers['x-api-key'] === 'spread') from.push(req.socket.remoteAddress!);
      res.writeHead(200).end('ok');
      sent!();
    });
    const port = await listenLoopback(server);
    const streams = [{ key: 'spread', rate: 2, sources }, { key: 'other', rate: 2 }];
    load = keyedLoad({ url: `http://127.0.0.1:${port}/`, header: 'x-api-key', streams, tickMs: 1000 });
    await first; // the tick sent all its requests at once, before any answer
    await load.stop();
    const n = load.sent('spread').length;
    expect(n).toBeGreaterThan(0);
    expect(from.sort()).toEqual(sources.slice(0, n));
  });
});
