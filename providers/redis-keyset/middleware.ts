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
 *
 * With `usage`, it also counts each accepted request per key (fingerprint), with errors and
 * source networks, for rekey's usage rules (usage-recorder.ts, README.md "Usage"). A key rekey
 * throttled (its keyset value `throttled:<consumer>`) gets 429 over `throttledPerSecond`.
 */
import { createFingerprinter } from '../../src/core/fingerprint.js';
import { parseRedisUrl } from '../../src/core/redis-endpoint.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import { connectKeysetRedis } from './connect.js';
import { networkOf, THROTTLED, USAGE_DEFAULTS } from './usage-keys.js';
import { UsageRecorder } from './usage-recorder.js';

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
  /**
   * Count usage in Redis for rekey's usage rules. `prefix` and `bucketMs` must equal the
   * provider's `usage` settings. @defaultValue off; when on: prefix `rekey:usage:`, bucketMs 10000, flushMs 1000
   */
  usage?: { prefix?: string; bucketMs?: number; flushMs?: number };
  /** Requests per second (per API server) a throttled key may still make; the rest get 429. @defaultValue 1 */
  throttledPerSecond?: number;
}

/** An accepted key: who it belongs to, and whether rekey throttled it. */
export interface Admission {
  consumer: string;
  fingerprint: string;
  /** Over the throttled key's allowance: answer 429. */
  throttled: boolean;
}

export interface KeysetVerifier {
  /** The consumer the key belongs to, or undefined when it is not accepted. */
  check(key: string | undefined): string | undefined;
  /** As check(), and counts the request against a throttled key's allowance. */
  admit(key: string | undefined): Admission | undefined;
  /** Counts one answered request of an admitted key (with `usage`; else nothing). */
  record(admission: Admission, address: string | undefined, status: number): void;
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
  const usage = options.usage;
  const recorder = usage && new UsageRecorder(redis, { prefix: usage.prefix ?? USAGE_DEFAULTS.prefix, bucketMs: usage.bucketMs ?? USAGE_DEFAULTS.bucketMs }, usage.flushMs ?? 1000);
  const allowance = throttleAllowance(options.throttledPerSecond ?? 1);
  const lookup = (key: string | undefined) => {
    if (!key) return undefined;
    const fp = fingerprint(key);
    const value = accepted.get(fp);
    return value === undefined ? undefined : { fp, value };
  };
  return {
    check: (key) => {
      const found = lookup(key);
      return found && consumerOf(found.value);
    },
    admit(key) {
      const found = lookup(key);
      if (!found) return undefined;
      const throttled = found.value.startsWith(THROTTLED) && !allowance(found.fp);
      return { consumer: consumerOf(found.value), fingerprint: found.fp, throttled };
    },
    record: (admission, address, status) => recorder?.record(admission.fingerprint, networkOf(address), status >= 400),
    async close() {
      clearInterval(timer);
      await recorder?.close();
      redis.disconnect();
      subscriber.disconnect();
    },
  };
}

const consumerOf = (value: string) => (value.startsWith(THROTTLED) ? value.slice(THROTTLED.length) : value);

/** Per throttled key, `perSecond` requests in each second of the clock; true while within it. */
function throttleAllowance(perSecond: number): (fingerprint: string) => boolean {
  let second = 0;
  let used = new Map<string, number>();
  return (fingerprint) => {
    const now = Math.floor(Date.now() / 1000);
    if (now !== second) [second, used] = [now, new Map<string, number>()];
    const n = (used.get(fingerprint) ?? 0) + 1;
    used.set(fingerprint, n);
    return n <= perSecond;
  };
}

interface MinimalRequest {
  headers: Record<string, string | string[] | undefined>;
  /** fastify's client address (honours its trustProxy setting). */
  ip?: string;
  socket?: { remoteAddress?: string };
}
/** What finishes: node's ServerResponse (express's `res`, fastify's `reply.raw`). */
interface Finishing {
  statusCode: number;
  once(event: 'finish', listener: () => void): unknown;
}
interface MinimalReply {
  statusCode?: number;
  code?: (status: number) => { send: (body: unknown) => unknown };
  end?: (body?: string) => void;
  setHeader?: (name: string, value: string) => void;
  once?: Finishing['once'];
  raw?: Finishing;
}

/**
 * A hook for fastify (`onRequest`) or express/connect (`app.use`). Accepted requests get
 * `request.consumer`; others are answered 401 without reaching the handler, and a throttled key
 * over its allowance 429. With the verifier's `usage`, each accepted request is counted when its
 * answer is sent (4xx and 5xx as errors).
 */
export function keysetAuth(verifier: KeysetVerifier, header = 'x-api-key') {
  const name = header.toLowerCase();
  return (request: MinimalRequest & { consumer?: string }, reply: MinimalReply, next?: () => void): void => {
    const raw = request.headers[name];
    const admission = verifier.admit(Array.isArray(raw) ? raw[0] : raw);
    if (admission) {
      const response = reply.raw ?? (reply.once ? (reply as Finishing) : undefined);
      response?.once('finish', () => verifier.record(admission, request.ip ?? request.socket?.remoteAddress, response.statusCode));
    }
    if (admission && !admission.throttled) {
      request.consumer = admission.consumer;
      next?.();
      return;
    }
    const [status, body] = admission ? [429, { error: 'API key throttled' }] : [401, { error: 'invalid API key' }];
    if (reply.code) {
      void reply.code(status).send(body);
      return;
    }
    reply.statusCode = status;
    reply.setHeader?.('content-type', 'application/json');
    reply.end?.(JSON.stringify(body));
  };
}
