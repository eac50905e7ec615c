/**
 * A second `rekey server` process on a harness's database whose change feed listens on another
 * queue prefix: it never hears of the rotations and revocations the test makes, so its delivery
 * cache keeps what it read for its full entry age (10 min: a loaded machine cannot expire an
 * entry mid-test), and its debug log shows each hand-out check that caught a stale entry.
 */
import { decodeProtectedHeader } from 'jose';
import { GRANT_TYPE, JWT_TOKEN_TYPE } from '../../src/delivery/routes.js';
import type { Harness } from './harness.js';
import { kill, spawnRekey, waitForOutput } from './processes.js';

export interface DeafServer {
  url: string;
  /** GET /v1/secrets/payments-api-key with `credential`: the status, and the version when 200. */
  value(credential: string): Promise<{ status: number; version: number | undefined }>;
  /** POST /v1/token for api.example.com with `credential`: the status, and the token's kid when 200. */
  token(credential: string): Promise<{ status: number; kid: string | undefined }>;
  /** How many hand-out checks caught a stale entry so far (pino writes asynchronously: poll it). */
  caught: () => number;
  stop(): Promise<void>;
}

export async function startDeafServer(h: Harness): Promise<DeafServer> {
  const child = spawnRekey(['server', '--port', '0'], { ...h.childEnv(), REKEY_QUEUE_PREFIX: `${h.env.prefix}-deaf`, LOG_LEVEL: 'debug', REKEY_DELIVERY_CACHE_MAX_AGE: '10m' });
  // Any free port, read from its start line: a random pick can collide with a port in use.
  const started = /"url":"(http:\/\/127\.0\.0\.1:\d+)".*"msg":"rekey started"/;
  await waitForOutput(child, started);
  const url = started.exec(child.output())![1]!;
  return {
    url,
    async value(credential) {
      const response = await fetch(`${url}/v1/secrets/payments-api-key`, { headers: { authorization: `Bearer ${credential}` } });
      return { status: response.status, version: response.status === 200 ? ((await response.json()) as { version: number }).version : undefined };
    },
    async token(credential) {
      const response = await fetch(`${url}/v1/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: credential, subject_token_type: JWT_TOKEN_TYPE, audience: 'api.example.com' }),
      });
      const body = (await response.json()) as { access_token?: string };
      return { status: response.status, kid: body.access_token ? decodeProtectedHeader(body.access_token).kid : undefined };
    },
    caught: () => child.output().split('\n').filter((line) => line.includes('hand-out check failed')).length,
    stop: async () => void (await kill(child, 'SIGTERM')),
  };
}
