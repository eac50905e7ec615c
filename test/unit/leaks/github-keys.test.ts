// GitHub's key list fetched from a URL (a loopback server standing in for
// api.github.com/meta/public_keys/secret_scanning): cached, refreshed with a
// conditional request, refreshed early for an unknown key id at most once per minRefresh,
// and kept when a refresh fails.
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { leaksSchema } from '../../../src/config/leaks.js';
import { GithubKeys, parseKeys } from '../../../src/leaks/github-keys.js';
import { SecretValue } from '../../../src/core/secret-value.js';

const pem = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
let served: { keys: Array<{ key_identifier: string; key: string; is_current: boolean }>; status: number };
let requests: Array<{ etag: string | undefined; authorization: string | undefined }>;
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push({ etag: req.headers['if-none-match'], authorization: req.headers.authorization });
    const body = JSON.stringify({ public_keys: served.keys });
    const etag = `"${served.keys.map((k) => k.key_identifier).join('-')}"`;
    if (served.status !== 200) return res.writeHead(served.status).end();
    if (req.headers['if-none-match'] === etag) return res.writeHead(304).end();
    res.writeHead(200, { 'content-type': 'application/json', etag }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/meta/public_keys/secret_scanning`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  served = { keys: [{ key_identifier: 'k1', key: pem(), is_current: true }], status: 200 };
  requests = [];
});

function source(clock: { now: number }, token?: string): GithubKeys {
  return new GithubKeys({
    source: url,
    minRefreshMs: 60_000,
    log: pino({ level: 'silent' }),
    now: () => clock.now,
    token: token ? () => SecretValue.of(token) : undefined,
  });
}

describe('GitHub public keys from a URL', () => {
  it('fetches once, then serves from the cache; sends the token as a bearer token', async () => {
    const keys = source({ now: 0 }, 'ghp_example');
    expect(await keys.get('k1')).toBeDefined();
    expect(await keys.get('k1')).toBeDefined();
    expect(requests).toEqual([{ etag: undefined, authorization: 'Bearer ghp_example' }]);
  });

  it('requests arriving together before the first fetch all wait for it', async () => {
    const keys = source({ now: 0 });
    const found = await Promise.all(Array.from({ length: 16 }, () => keys.get('k1')));
    expect(found.every(Boolean)).toBe(true);
    expect(requests).toHaveLength(1);
  });

  it('an unknown key id triggers one early fetch per minRefresh, however many requests name it', async () => {
    const clock = { now: 0 };
    const keys = source(clock);
    await keys.get('k1');
    served.keys.push({ key_identifier: 'k2', key: pem(), is_current: true });
    clock.now = 1000; // within minRefresh of the first fetch: no early fetch yet
    expect(await keys.get('k2')).toBeUndefined();
    clock.now = 61_000;
    expect(await keys.get('k2')).toBeDefined(); // GitHub rotated: found after one fetch
    const before = requests.length;
    await Promise.all(Array.from({ length: 50 }, () => keys.get('made-up')));
    clock.now = 62_000;
    await Promise.all(Array.from({ length: 50 }, () => keys.get('made-up')));
    expect(requests.length - before).toBe(0);
    clock.now = 121_000;
    await keys.get('made-up');
    expect(requests.length - before).toBe(1);
  });

  it('an unknown key id right after a scheduled refresh is fetched at once: only early fetches count against minRefresh', async () => {
    const clock = { now: 0 };
    const keys = source(clock);
    await keys.get('k1');
    clock.now = 290_000;
    await keys.refresh(); // the housekeeping job's regular refresh
    served.keys.push({ key_identifier: 'k2', key: pem(), is_current: true }); // GitHub rotates its key
    clock.now = 300_000; // 10 s later: the floor between any two fetches
    const before = requests.length;
    expect(await keys.get('k2')).toBeDefined();
    expect(requests.length - before).toBe(1);
  });

  it('a key GitHub withdrew is refused after the next refresh, which by default comes within minutes', async () => {
    const defaults = leaksSchema.parse({ github: { publicKeys: url } }).github!;
    expect(defaults.refresh).toBeLessThanOrEqual(5 * 60_000);
    expect(defaults.minRefresh).toBeLessThanOrEqual(60_000);
    const keys = source({ now: 0 });
    expect(await keys.get('k1')).toBeDefined();
    served.keys = [{ key_identifier: 'k2', key: pem(), is_current: true }];
    await keys.refresh();
    expect(await keys.get('k1')).toBeUndefined();
    expect(await keys.get('k2')).toBeDefined();
  });

  it('a refresh (the housekeeping job github-keys) asks with If-None-Match, and keeps the keys when it fails', async () => {
    const keys = source({ now: 0 });
    await keys.get('k1');
    await keys.refresh();
    expect(requests[1]?.etag).toBe('"k1"');
    served.status = 503;
    await keys.refresh();
    expect(requests).toHaveLength(3); // the refresh was tried, and failed
    expect(await keys.get('k1')).toBeDefined();
    expect(requests).toHaveLength(3); // a known key id costs no fetch
  });

  it('keeps only ECDSA P-256 keys and refuses a document without one', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const doc = { public_keys: [{ key_identifier: 'a', key: rsa }, { key_identifier: 'b', key: p384 }, { key_identifier: 'c', key: 'junk' }, { key_identifier: 'd', key: pem() }] };
    expect([...parseKeys(JSON.stringify(doc)).keys()]).toEqual(['d']);
    expect(() => parseKeys(JSON.stringify({ public_keys: doc.public_keys.slice(0, 3) }))).toThrow(/no ECDSA P-256 key/);
    expect(() => parseKeys('{}')).toThrow(/no public_keys/);
  });
});
