// keyedLoadProcess (test/support/gateways/keyed-load-process.ts): the usage tests' load generator
// in a child process. What it is for: a stall of this process (which runs what the load measures)
// does not stop the sending, and what the child reports arrives whole.
import { createServer } from 'node:http';
import { afterEach, expect, it } from 'vitest';
import { keyedLoadProcess, type KeyedLoadProcess } from '../support/gateways/keyed-load-process.js';
import { listenLoopback } from '../support/fake-http.js';
import { until } from '../support/poll.js';

let servers: Array<ReturnType<typeof createServer>> = [];
let load: KeyedLoadProcess | undefined;
afterEach(async () => {
  await load?.stop();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  servers = [];
  load = undefined;
});

/** A server answering 200; `seen` counts the requests of each key it got. */
async function serve(seen = new Map<string, number>()): Promise<string> {
  const server = createServer((req, res) => {
    const key = String(req.headers['x-api-key']);
    seen.set(key, (seen.get(key) ?? 0) + 1);
    res.writeHead(200).end('ok');
  });
  servers.push(server);
  return `http://127.0.0.1:${await listenLoopback(server)}/`;
}

it('goes on sending while this process is stalled (the answers come after, from the server in this process)', async () => {
  load = await keyedLoadProcess({ url: await serve(), header: 'x-api-key', streams: [{ key: 'k', rate: 50 }], tickMs: 50 });
  await until(() => Promise.resolve((load!.answers('k').get(200) ?? 0) > 10), 30_000, 'the first answers');
  const from = Date.now();
  while (Date.now() < from + 2000); // the stall: nothing else runs in this process
  const to = Date.now();
  await load.synced();
  // Sent in this process, no request would start in the stall: its timer cannot fire.
  const during = load.sent('k').filter((r) => r.start > from && r.start < to);
  expect(during.length).toBeGreaterThan(0);
  // Answered by this process's server once it ran again, all of them.
  await until(async () => (await load!.synced(), load!.sent('k').filter((r) => r.start < to).every((r) => r.end !== undefined)), 30_000, 'the answers to what was sent in the stall');
  const answered = load.sent('k').filter((r) => r.start > from && r.start < to);
  expect(answered.length).toBe(during.length);
  expect(answered.every((r) => r.end! >= to)).toBe(true);
});

it('counts every request it sent once stopped, and a child that died is an error when read', async () => {
  const url = await serve();
  load = await keyedLoadProcess({ url, header: 'x-api-key', streams: [{ key: 'k', rate: 100 }], tickMs: 20 });
  await until(() => Promise.resolve((load!.answers('k').get(200) ?? 0) > 20), 30_000, 'the first answers');
  await load.stop();
  const sent = load.sent('k');
  expect(sent.every((r) => r.end !== undefined)).toBe(true);
  expect(Object.fromEntries(load.answers('k'))).toEqual({ 200: sent.length });

  load = await keyedLoadProcess({ url, header: 'x-api-key', streams: [{ key: 'k', rate: 10 }] });
  process.kill(load.pid, 'SIGKILL');
  const readFails = () => {
    try {
      load!.answers('k');
      return false;
    } catch (error) {
      expect((error as Error).message).toMatch(/the load generator \(pid \d+\) exited \(SIGKILL\) before it was stopped/);
      return true;
    }
  };
  await until(() => Promise.resolve(readFails()), 30_000, 'reading the load to fail once the child is gone');
  expect(() => load!.set({ key: 'k', rate: 1 })).toThrow(/exited/);
});


it('sends every stream to each of several gateways, reporting nothing, as bench/usage drives three', async () => {
  const seen = [new Map<string, number>(), new Map<string, number>()];
  const urls = [await serve(seen[0]), await serve(seen[1])];
  await expect(keyedLoadProcess({ url: urls, header: 'x-api-key', streams: [{ key: 'k', rate: 10 }] })).rejects.toThrow(/several urls need reports: false/);
  load = await keyedLoadProcess({ url: urls, header: 'x-api-key', streams: [{ key: 'a', rate: 100 }], tickMs: 20, reports: false });
  load.set({ key: 'b', rate: 100 });
  const both = () => seen.every((s) => (s.get('a') ?? 0) > 10 && (s.get('b') ?? 0) > 10);
  await until(() => Promise.resolve(both()), 30_000, "both gateways getting both keys' requests");
  await load.synced();
  expect(load.sent('a')).toEqual([]);
  expect(load.answers('a')).toEqual(new Map());
});
