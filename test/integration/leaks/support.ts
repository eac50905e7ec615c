// Shared by the leak receiver tests and bench/leak-latency.ts: senders that sign like
// GitHub, GitGuardian, EventBridge and Standard Webhooks do, and a rekey (harness) with
// the leak routes served in front of a real HAProxy.
import { createHash, createHmac, generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { leakRoutes } from '../../../src/leaks/routes.js';
import { standardWebhookSignature } from '../../../src/core/kit/standard-webhooks.js';
import type { SecretValue } from '../../../src/core/secret-value.js';
import { call } from '../../conformance/refs.js';
import { startBackend, startHaproxy, tempDir, type Backend, type HaproxyGateway } from '../../support/gateways/index.js';
import { startHarness, type Harness, type HarnessOptions } from '../../support/harness.js';

export { until } from '../../support/poll.js';

/** What the test configures as "GitHub": a P-256 key pair and its key file in GitHub's format. */
export interface FakeGithub {
  keyId: string;
  privateKey: KeyObject;
  /** Path of the `{public_keys:[...]}` file. */
  keysFile: string;
  /** GitHub's headers for `body`, signed with our key (or another id). */
  headers(body: Buffer | string, keyId?: string): Record<string, string>;
}

export async function fakeGithub(dir: string): Promise<FakeGithub> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyId = createHash('sha256').update(randomBytes(16)).digest('hex');
  const keysFile = join(dir, 'github-keys.json');
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await writeFile(keysFile, JSON.stringify({ public_keys: [{ key_identifier: keyId, key: pem, is_current: true }] }));
  return {
    keyId,
    privateKey,
    keysFile,
    headers: (body, id = keyId) => ({
      'content-type': 'application/json',
      'github-public-key-identifier': id,
      'github-public-key-signature': sign('sha256', Buffer.from(body), privateKey).toString('base64'),
    }),
  };
}

/** GitGuardian's custom webhook headers: HMAC-SHA256 keyed with timestamp + token, over the body. */
export function gitguardianHeaders(token: string, body: Buffer | string, timestamp = String(Math.floor(Date.now() / 1000))): Record<string, string> {
  const digest = createHmac('sha256', Buffer.from(timestamp + token)).update(body).digest('hex');
  return { 'content-type': 'application/json', 'gitguardian-signature': `sha256=${digest}`, timestamp };
}

/** Standard Webhooks headers for `body` under a `whsec_` secret. */
export function webhookHeaders(secret: string, body: Buffer | string, id = `msg_${randomUUID()}`, timestamp = String(Math.floor(Date.now() / 1000))) {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  return { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': standardWebhookSignature(key, id, timestamp, body) };
}

/** An EventBridge event as AWS Health emits it for an exposed access key. */
export function awsHealthEvent(accessKeyId: string, id = randomUUID(), eventArnId = id): string {
  return JSON.stringify({
    version: '0',
    id,
    'detail-type': 'AWS Health Event',
    source: 'aws.health',
    account: '123456789012',
    time: new Date().toISOString(),
    region: 'us-east-1',
    resources: [],
    detail: {
      eventArn: `arn:aws:health:global::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/AWS_RISK_CREDENTIALS_EXPOSED_${eventArnId}`,
      service: 'RISK',
      eventTypeCode: 'AWS_RISK_CREDENTIALS_EXPOSED',
      eventTypeCategory: 'issue',
      startTime: new Date().toUTCString(),
      eventDescription: [{ language: 'en_US', latestDescription: 'Your AWS Account may be compromised!' }],
      affectedEntities: [{ entityValue: accessKeyId }],
    },
  });
}

export interface Answer {
  status: number;
  body: string;
}

/** POSTs from a local address of our choosing (127.0.0.0/8 is all loopback), as a client elsewhere would. */
export function postFrom(localAddress: string, base: string, path: string, body: Buffer | string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method: 'POST', headers, localAddress, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** POSTs raw bytes; a refused upload (the server answered early and closed) still yields its status when one came. */
export async function post(base: string, path: string, body: Buffer | string, headers: Record<string, string>): Promise<Answer> {
  const response = await fetch(new URL(path, base), { method: 'POST', headers, body });
  return { status: response.status, body: await response.text() };
}

export interface LeakEnv {
  h: Harness;
  backend: Backend;
  gateway: HaproxyGateway;
  github: FakeGithub;
  dir: string;
  /** Env var names holding this file's receiver credentials (unique per file). */
  env: { gitguardian: string; aws: string; webhook: string };
  secrets: { gitguardian: string; aws: string; webhook: string };
  stop(): Promise<void>;
}

/** A rekey with the leak routes served and workers running, a real HAProxy, and senders' credentials. */
export async function startLeakEnv(label: string, options: Partial<HarnessOptions> = {}): Promise<LeakEnv> {
  const dir = await tempDir(`leaks-${label}`);
  const backend = await startBackend();
  const gateway = await startHaproxy(backend.port);
  const github = await fakeGithub(dir.path);
  const suffix = randomUUID().replaceAll('-', '').slice(0, 8).toUpperCase();
  const env = { gitguardian: `LEAKTEST_GG_${suffix}`, aws: `LEAKTEST_AWS_${suffix}`, webhook: `LEAKTEST_WH_${suffix}` };
  const secrets = { gitguardian: randomBytes(24).toString('hex'), aws: randomBytes(24).toString('hex'), webhook: `whsec_${randomBytes(32).toString('base64')}` };
  process.env[env.gitguardian] = secrets.gitguardian;
  process.env[env.aws] = secrets.aws;
  process.env[env.webhook] = secrets.webhook;
  const h = await startHarness({ label: `leaks-${label}`, routes: [leakRoutes], ...options });
  return {
    h,
    backend,
    gateway,
    github,
    dir: dir.path,
    env,
    secrets,
    async stop() {
      await h.stop();
      await gateway.stop();
      await backend.close();
      await dir.remove();
      for (const name of Object.values(env)) delete process.env[name];
    },
  };
}

/** The config's `env:` section letting it read the receivers' credentials (LeakEnv.env). */
export const ENV_ALLOW_YAML = '\nenv: { allow: ["LEAKTEST_*"] }\n';

/** The `leaks:` section for this env (and the `env:` allow-list it needs); `extra` goes in verbatim (YAML flow fields). */
export function leaksYaml(e: LeakEnv, extra = ''): string {
  return `${ENV_ALLOW_YAML}
leaks:
  github: { publicKeys: ${e.github.keysFile}, minRefresh: 1h }
  gitguardian: { token: "\${env:${e.env.gitguardian}}", tolerance: 5m }
  awsHealth: { header: X-Rekey-Token, token: "\${env:${e.env.aws}}" }
  webhook: { secret: "\${env:${e.env.webhook}}" }
  rateLimit: { max: 100000, window: 1m }
${extra}`;
}

/** A secret with a random-issued key in the local store, served by the HAProxy gateway. */
export function gatewaySecretYaml(name: string, fields = ''): string {
  return `
  ${name}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_test_ }
    targets: [edge]
    grace: 1h
    retry: { attempts: 3, backoff: 100ms }
    timeout: 5s${fields ? `\n    ${fields}` : ''}`;
}

export function providersYaml(e: LeakEnv, extra = ''): string {
  return `
providers:
  vault: { type: local }
  edge: { type: haproxy, runtimeApi: "${e.gateway.runtimeApi.unix}", map: ${e.gateway.map}, probe: { url: "${e.gateway.url}", header: ${e.gateway.header} } }
${extra}`;
}

/** The value of a secret's version in a stage, read back from its store. */
export async function storedValue(h: Harness, secret: string, stage: 'current' | 'previous' | 'pending' = 'current'): Promise<SecretValue> {
  const { store } = await h.runtime.resolver.resolve(secret);
  return store.read({ stage }, call());
}


export const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex');
