// Each receiver against its sender's own published example, so "verified" means "as the
// sender signs", not "as our test helper signs".
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretValue } from '../../../src/core/secret-value.js';
import { gitguardianReceiver } from '../../../src/leaks/gitguardian.js';
import { githubReceiver } from '../../../src/leaks/github.js';
import { GithubKeys } from '../../../src/leaks/github-keys.js';
import { hmslHash } from '../../../src/leaks/hmsl.js';
import type { RawRequest, ReceiverContext } from '../../../src/leaks/receiver.js';
import { webhookReceiver } from '../../../src/leaks/standard-webhook.js';

const silent = pino({ level: 'silent' });
let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'rekey-leak-vectors-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

function request(body: string, headers: Record<string, string>): RawRequest {
  return { body: Buffer.from(body), headers, receivedAt: new Date() };
}

function context(o: { now?: number; secret?: string; keys?: GithubKeys }): ReceiverContext {
  return {
    now: () => o.now ?? Date.now(),
    credential: () => SecretValue.of(o.secret ?? 'unused'),
    githubKeys: () => o.keys!,
  } as unknown as ReceiverContext;
}

async function rejection(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (error) {
    return (error as { reason?: string }).reason ?? String(error);
  }
  return 'accepted';
}

describe("GitHub's documented sample request", () => {
  // docs.github.com, "Implement signature verification in your secret alert service", with the
  // key GitHub published under that identifier at api.github.com/meta/public_keys/secret_scanning.
  const keyId = 'bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c';
  const pem = '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYAGMWO8XgCamYKMJS6jc/qgvSlAd\nAjPuDPRcXU22YxgBrz+zoN19MzuRyW87qEt9/AmtoNP5GrobzUvQSyJFVw==\n-----END PUBLIC KEY-----\n';
  const signature = 'MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4XaeSt/AO1RtBY66YcAdjxji410VQV4xg==';
  const body = '[{"source":"commit","token":"some_token","type":"some_type","url":"https://example.com/base-repo-url/"}]';
  const headers = { 'github-public-key-identifier': keyId, 'github-public-key-signature': signature };
  const config = { publicKeys: '', refresh: 3_600_000, minRefresh: 60_000 } as never;

  async function keys(): Promise<GithubKeys> {
    const file = join(dir, 'github.json');
    await writeFile(file, JSON.stringify({ public_keys: [{ key_identifier: keyId, key: pem, is_current: true }] }));
    return new GithubKeys({ source: file, minRefreshMs: 60_000, log: silent });
  }

  it('verifies over the raw body', async () => {
    const ctx = context({ keys: await keys() });
    expect(await rejection(() => githubReceiver.authenticate(request(body, headers), config, ctx))).toBe('accepted');
  });

  it('refuses the same JSON re-serialised, with a trailing newline, or under another key id', async () => {
    const ctx = context({ keys: await keys() });
    const reserialised = JSON.stringify(JSON.parse(body), null, 2);
    expect(await rejection(() => githubReceiver.authenticate(request(reserialised, headers), config, ctx))).toBe('bad_signature');
    expect(await rejection(() => githubReceiver.authenticate(request(`${body}\n`, headers), config, ctx))).toBe('bad_signature');
    const otherId = { ...headers, 'github-public-key-identifier': '90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a' };
    expect(await rejection(() => githubReceiver.authenticate(request(body, otherId), config, ctx))).toBe('unknown_key');
  });
});

describe("GitGuardian's documented test vector", () => {
  // docs.gitguardian.com custom webhook: timestamp "0", signature token "foo", payload "bar".
  const headers = { 'gitguardian-signature': 'sha256=172fe3d694b734aa53dc892fd3b8d62163fc240064de570ba006900bb54a0fc2', timestamp: '0' };
  const config = { token: { kind: 'env', name: 'X' }, tolerance: 300_000 } as never;

  it('verifies: the HMAC key is timestamp + token, the message the raw body', async () => {
    expect(await rejection(() => gitguardianReceiver.authenticate(request('bar', headers), config, context({ now: 0, secret: 'foo' })))).toBe('accepted');
    const deprecated = { 'x-gitguardian-signature': headers['gitguardian-signature'], timestamp: '0' };
    expect(await rejection(() => gitguardianReceiver.authenticate(request('bar', deprecated), config, context({ now: 0, secret: 'foo' })))).toBe('accepted');
  });

  it('refuses another body, another token, and the right signature replayed later', async () => {
    expect(await rejection(() => gitguardianReceiver.authenticate(request('baz', headers), config, context({ now: 0, secret: 'foo' })))).toBe('bad_signature');
    expect(await rejection(() => gitguardianReceiver.authenticate(request('bar', headers), config, context({ now: 0, secret: 'fop' })))).toBe('bad_signature');
    expect(await rejection(() => gitguardianReceiver.authenticate(request('bar', headers), config, context({ now: 300_001, secret: 'foo' })))).toBe('stale_timestamp');
  });

  it("computes GitGuardian's hmsl_hash like ggshield (scrypt N=2048 r=8 p=1, salt SHA-256(\"GitGuardian\"))", async () => {
    // Reference values from Python's hashlib.scrypt with the same parameters (ggshield/hmsl/crypto.py).
    expect(await hmslHash('foo')).toBe('8b420be31c6beaf98c2bd9cafef4b79edf68ccd7054b0b864985e78a081b8b69');
    expect(await hmslHash(SecretValue.of('rk_live_0123456789abcdefghijABCDEFGHIJ0aZ9xY'))).toBe('4d12de733aa4d852d02cefe825510efed33a62f60bf98fa836b2c638197a2b22');
  });
});

describe("the Standard Webhooks specification's test vector", () => {
  const headers = { 'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek', 'webhook-timestamp': '1614265330', 'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' };
  const config = { secret: { kind: 'env', name: 'X' }, tolerance: 300_000 } as never;
  const ctx = (now = 1614265330_000) => context({ now, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' });

  it('verifies, also among several signatures (a sender rotating its secret)', async () => {
    expect(await rejection(() => webhookReceiver.authenticate(request('{"test": 2432232314}', headers), config, ctx()))).toBe('accepted');
    const two = { ...headers, 'webhook-signature': `v1,AAAA ${headers['webhook-signature']}` };
    expect(await rejection(() => webhookReceiver.authenticate(request('{"test": 2432232314}', two), config, ctx()))).toBe('accepted');
  });

  it('refuses a changed body, a changed id, and a replay outside the window', async () => {
    expect(await rejection(() => webhookReceiver.authenticate(request('{"test": 2432232315}', headers), config, ctx()))).toBe('bad_signature');
    expect(await rejection(() => webhookReceiver.authenticate(request('{"test": 2432232314}', { ...headers, 'webhook-id': 'msg_x' }), config, ctx()))).toBe('bad_signature');
    expect(await rejection(() => webhookReceiver.authenticate(request('{"test": 2432232314}', headers), config, ctx(1614265330_000 + 300_001)))).toBe('stale_timestamp');
  });
});
