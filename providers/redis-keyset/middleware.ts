/**
 * For API servers: check an incoming key against a keyset that rekey maintains.
 *
 *   const keys = await createKeysetVerifier({ redisUrl, fingerprintKey, keyset: 'payments-api-key' });
 *   app.addHook('onRequest', keysetAuth(keys));            // fastify
 *   app.use(keysetAuth(keys));                              // express / connect
 *
 * The verifier holds the keyset's fingerprints in memory, reloads them whenever rekey
 * announces a change, and resynchronises periodically in case a message was missed.
 * A key is checked by computing its HMAC fingerprint and looking that up: the lookup
 * never compares key material, so its timing tells an attacker nothing about valid keys.
 */
import { createFingerprinter } from '../../src/core/fingerprint.js';
import { parseRedisUrl } from '../../src/core/redis-endpoint.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import { connectKeysetRedis } from './connect.js';

export interface KeysetVerifierOptions {
  /** The Redis rekey publishes to, in any REDIS_URL form (single node, Sentinel, Cluster). */
  redisUrl: string;
  /** The same REKEY_FINGERPRINT_KEY rekey uses. */
  fingerprintKey: string | SecretValue;
  /** The keyset name: the secret's name unless its binding sets `set:`. */
  keyset: string;
  keyPrefix?: string;
  channel?: string;
  /** Full resync period. @defaultValue 30000 */
  resyncMs?: number;
}

export interface KeysetVerifier {
  /** The consumer the key belongs to, or undefined when it is not accepted. */
  check(key: string | undefined): string | undefined;
  close(): Promise<void>;
}

export async function createKeysetVerifier(options: KeysetVerifierOptions): Promise<KeysetVerifier> {
  const fingerprint = createFingerprinter(options.fingerprintKey);
  const hash = `${options.keyPrefix ?? 'rekey:keyset:'}${options.keyset}`;
  const endpoint = parseRedisUrl(options.redisUrl);
  const redis = connectKeysetRedis(endpoint, 1);
  const subscriber = connectKeysetRedis(endpoint, null);
  let accepted = new Map<string, string>();
  const reload = async () => {
    accepted = new Map(Object.entries(await redis.hgetall(hash)));
  };
  await subscriber.subscribe(options.channel ?? 'rekey:keyset');
  subscriber.on('message', (_channel, changed) => {
    if (changed === hash) void reload().catch(() => undefined);
  });
  // Reload after (re)subscribing, so nothing published before the subscription is missed.
  subscriber.on('ready', () => void reload().catch(() => undefined));
  await reload();
  const timer = setInterval(() => void reload().catch(() => undefined), options.resyncMs ?? 30_000);
  timer.unref();
  return {
    check: (key) => (key ? accepted.get(fingerprint(key)) : undefined),
    close() {
      clearInterval(timer);
      redis.disconnect();
      subscriber.disconnect();
      return Promise.resolve();
    },
  };
}

interface MinimalRequest {
  headers: Record<string, string | string[] | undefined>;
}
interface MinimalReply {
  statusCode?: number;
  code?: (status: number) => { send: (body: unknown) => unknown };
  end?: (body?: string) => void;
  setHeader?: (name: string, value: string) => void;
}

/**
 * A hook for fastify (`onRequest`) or express/connect (`app.use`). Accepted requests get
 * `request.consumer`; others are answered 401 without reaching the handler.
 */
export function keysetAuth(verifier: KeysetVerifier, header = 'x-api-key') {
  const name = header.toLowerCase();
  return (request: MinimalRequest & { consumer?: string }, reply: MinimalReply, next?: () => void): void => {
    const raw = request.headers[name];
    const consumer = verifier.check(Array.isArray(raw) ? raw[0] : raw);
    if (consumer !== undefined) {
      request.consumer = consumer;
      next?.();
      return;
    }
    if (reply.code) {
      void reply.code(401).send({ error: 'invalid API key' });
      return;
    }
    reply.statusCode = 401;
    reply.setHeader?.('content-type', 'application/json');
    reply.end?.('{"error":"invalid API key"}');
  };
}
