/**
 * Every environment variable rekey's processes read, in one place. The Helm chart's
 * tests check that each one is wired; nothing else in src/ reads process.env (providers
 * read only the `${env:NAME}` references their config names, and cloud SDKs their
 * default credential chains).
 */
import { requireDuration } from './core/duration.js';
import { RekeyError } from './core/errors.js';
import { outboundUrlProblem } from './core/kit/outbound-url.js';
import { parseRedisUrl, type RedisEndpoint } from './core/redis-endpoint.js';
import { SecretValue } from './core/secret-value.js';

export interface EnvVar {
  description: string;
  /** Holds a credential: comes from a Kubernetes Secret, never a ConfigMap. */
  secret: boolean;
  /** Which processes cannot start without it. */
  requiredBy: ReadonlyArray<'worker' | 'server' | 'migrate'>;
  /** Given to these processes only (the chart leaves it out of the others); every process when absent. */
  only?: ReadonlyArray<'migrate'>;
  default?: string;
}

export const ENVIRONMENT = {
  DATABASE_URL: {
    description: 'PostgreSQL connection URL for rekey state',
    secret: true,
    requiredBy: ['worker', 'server', 'migrate'],
    default: 'postgresql://postgres@127.0.0.1:5432/rekey',
  },
  REKEY_MIGRATE_DATABASE_URL: {
    description:
      'PostgreSQL URL of the role that owns the tables, for `rekey migrate` only; it grants the role of DATABASE_URL what the runtime needs (never UPDATE/DELETE/TRUNCATE of the audit log). Unset: migrate as DATABASE_URL (one role, whose holder can rewrite the audit log)',
    secret: true,
    requiredBy: [],
    only: ['migrate'],
  },
  REDIS_URL: {
    description:
      'Redis for the BullMQ queues: redis://host:6379/db (one node), redis+sentinel://h1:26379,h2:26379/mymaster (Sentinel) or redis+cluster://h1:6379,h2:6379 (Cluster seeds); rediss for TLS',
    secret: true,
    requiredBy: ['worker', 'server'],
    default: 'redis://127.0.0.1:6379',
  },
  REDIS_PASSWORD: {
    description: "Password of the Redis data nodes; wins over one in REDIS_URL (e.g. a Redis operator's generated Secret)",
    secret: true,
    requiredBy: [],
  },
  REDIS_SENTINEL_PASSWORD: {
    description: "Password of the Redis sentinels, when they require one (Sentinel's requirepass)",
    secret: true,
    requiredBy: [],
  },
  REKEY_FINGERPRINT_KEY: {
    description: 'HMAC-SHA256 key (32 bytes, hex or base64) for value fingerprints',
    secret: true,
    requiredBy: ['worker', 'server'],
  },
  REKEY_AUDIT_KEY: {
    description: 'HMAC-SHA256 key (32 bytes, hex or base64) of the audit chain and its anchors; keep it outside the database, and keep it: `rekey audit verify` needs the key the rows were written under',
    secret: true,
    requiredBy: ['worker', 'server'],
  },
  REKEY_AUDIT_ANCHOR_INTERVAL: {
    description: 'How often the cluster-wide anchor job logs a signed audit anchor (and posts it to REKEY_AUDIT_ANCHOR_WEBHOOK); at most 1h',
    secret: false,
    requiredBy: [],
    default: '1h',
  },
  REKEY_AUDIT_ANCHOR_WEBHOOK: {
    description: 'Optional https URL the anchor job POSTs each signed anchor to as JSON (http only to a loopback address; never a link-local or cloud metadata address)',
    secret: true,
    requiredBy: [],
  },
  REKEY_LOCAL_STORE_KEY: {
    description: 'AES-256-GCM key (32 bytes, hex or base64) sealing values in the built-in local store',
    secret: true,
    requiredBy: [],
  },
  REKEY_QUEUE_PREFIX: {
    description: 'BullMQ key prefix; keep the braces for Redis Cluster hash-tag safety',
    secret: false,
    requiredBy: [],
    default: '{rekey}',
  },
  REKEY_DRAIN_TIMEOUT: {
    description: 'How long a worker waits for in-flight jobs after SIGTERM before exiting',
    secret: false,
    requiredBy: [],
    default: '25s',
  },
  REKEY_DELIVERY_CACHE_MAX_AGE: {
    description:
      "The longest `rekey server` keeps a delivered value, signing key or authenticator's live values in memory without news from the change feed (0s: no cache); a revoked version is refused regardless, by the hand-out's own check",
    secret: false,
    requiredBy: [],
    default: '5s',
  },
  REKEY_JWKS_MAX_AGE: {
    description:
      "How long verifiers may cache the JWKS document (its Cache-Control max-age), and so how long after its promotion a new signing key waits before it signs tokens: until then the previous key signs, so a verifier's cached document always holds the key of every token minted",
    secret: false,
    requiredBy: [],
    default: '60s',
  },
  REKEY_TRUST_PROXY: {
    description:
      "Which reverse proxies `rekey server` believes about the client's address (X-Forwarded-For, by which failed authentications are counted): false, a hop count (1 behind one ingress), or comma-separated addresses/CIDRs; true believes any client and is refused",
    secret: false,
    requiredBy: [],
    default: 'false',
  },
  REKEY_DASHBOARD_COOKIE_SECURE: {
    description: "Whether the dashboard's session cookie is Secure (sent over HTTPS only, named __Host-rekey_session): true, or false for plain-HTTP local development",
    secret: false,
    requiredBy: [],
    default: 'true',
  },
  LOG_LEVEL: { description: 'pino log level', secret: false, requiredBy: [], default: 'info' },
  PORT: { description: 'HTTP port of `rekey server` (`--port` wins)', secret: false, requiredBy: [], default: '8080' },
  REKEY_METRICS_PORT: {
    description: 'Serve /metrics on this port only (0: any free one), apart from the port an ingress routes to; empty: /metrics on the main port',
    secret: false,
    requiredBy: [],
  },
} as const satisfies Record<string, EnvVar>;

export type EnvName = keyof typeof ENVIRONMENT;

export interface Settings {
  databaseUrl: string;
  /** REKEY_MIGRATE_DATABASE_URL: the owner role's URL for `rekey migrate`, when it is not DATABASE_URL's. */
  migrateDatabaseUrl: string | undefined;
  redisUrl: string;
  /** REDIS_URL parsed, with REDIS_PASSWORD and REDIS_SENTINEL_PASSWORD. */
  redis: RedisEndpoint;
  /** REKEY_FINGERPRINT_KEY. */
  fingerprintKey: SecretValue | undefined;
  /** REKEY_AUDIT_KEY. */
  auditKey: SecretValue | undefined;
  /** REKEY_AUDIT_ANCHOR_INTERVAL in milliseconds. */
  anchorEveryMs: number;
  /** REKEY_AUDIT_ANCHOR_WEBHOOK, checked; a SecretValue because such URLs often carry a token. */
  anchorWebhook: SecretValue | undefined;
  /** REKEY_LOCAL_STORE_KEY: the built-in local store's default sealing key (ProviderContext.storeKey). */
  localStoreKey: SecretValue | undefined;
  queuePrefix: string;
  drainTimeoutMs: number;
  /** fastify's trustProxy: nobody by default, so a client cannot pick the address its failures are counted by. */
  /** REKEY_DELIVERY_CACHE_MAX_AGE in milliseconds. */
  deliveryCacheMaxAgeMs: number;
  /** REKEY_JWKS_MAX_AGE in milliseconds, whole seconds (Cache-Control counts seconds). */
  jwksMaxAgeMs: number;
  trustProxy: false | number | string[];
  /** REKEY_DASHBOARD_COOKIE_SECURE. */
  dashboardCookieSecure: boolean;
  logLevel: string;
  port: number;
  /** REKEY_METRICS_PORT: /metrics is served there only; undefined serves it on the main port. */
  metricsPort: number | undefined;
}

/** Reads the environment once. @throws RekeyError REKEY_ERR_CONFIG naming the variable. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const get = (name: EnvName): string | undefined => {
    const spec: EnvVar = ENVIRONMENT[name];
    return env[name] || spec.default;
  };
  const drain = requireDuration(get('REKEY_DRAIN_TIMEOUT')!, 'REKEY_DRAIN_TIMEOUT');
  const port = Number(get('PORT'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RekeyError('REKEY_ERR_CONFIG', 'PORT must be a TCP port');
  const metricsText = get('REKEY_METRICS_PORT');
  const metricsPort = metricsText ? Number(metricsText) : undefined;
  if (metricsPort !== undefined && (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535)) {
    throw new RekeyError('REKEY_ERR_CONFIG', 'REKEY_METRICS_PORT must be a TCP port (or empty)');
  }
  const redis = parseRedisUrl(get('REDIS_URL')!, { password: optionalSecret(get('REDIS_PASSWORD')), sentinelPassword: optionalSecret(get('REDIS_SENTINEL_PASSWORD')) });
  const queuePrefix = get('REKEY_QUEUE_PREFIX')!;
  const migrateDatabaseUrl = get('REKEY_MIGRATE_DATABASE_URL');
  // Every key of every queue must hash to one slot: BullMQ's scripts touch several at once.
  if (redis.mode === 'cluster' && !hashTag(queuePrefix)) {
    throw new RekeyError('REKEY_ERR_CONFIG', 'REKEY_QUEUE_PREFIX must contain a hash tag such as {rekey} on a Redis Cluster');
  }
  return {
    databaseUrl: postgresUrl(get('DATABASE_URL')!, 'DATABASE_URL'),
    migrateDatabaseUrl: migrateDatabaseUrl && postgresUrl(migrateDatabaseUrl, 'REKEY_MIGRATE_DATABASE_URL'),
    redisUrl: get('REDIS_URL')!,
    redis,
    fingerprintKey: optionalSecret(get('REKEY_FINGERPRINT_KEY')),
    localStoreKey: optionalSecret(get('REKEY_LOCAL_STORE_KEY')),
    auditKey: optionalSecret(get('REKEY_AUDIT_KEY')),
    anchorEveryMs: anchorInterval(get('REKEY_AUDIT_ANCHOR_INTERVAL')!),
    anchorWebhook: anchorWebhook(get('REKEY_AUDIT_ANCHOR_WEBHOOK')),
    queuePrefix,
    drainTimeoutMs: drain,
    deliveryCacheMaxAgeMs: requireDuration(get('REKEY_DELIVERY_CACHE_MAX_AGE')!, 'REKEY_DELIVERY_CACHE_MAX_AGE'),
    jwksMaxAgeMs: wholeSeconds(requireDuration(get('REKEY_JWKS_MAX_AGE')!, 'REKEY_JWKS_MAX_AGE'), 'REKEY_JWKS_MAX_AGE'),
    trustProxy: parseTrustProxy(get('REKEY_TRUST_PROXY')!),
    dashboardCookieSecure: booleanSetting(get('REKEY_DASHBOARD_COOKIE_SECURE')!, 'REKEY_DASHBOARD_COOKIE_SECURE'),
    logLevel: get('LOG_LEVEL')!,
    port,
    metricsPort,
  };
}

/**
 * A PostgreSQL URL the driver can parse: a reserved character left raw in a password (`#`) would
 * fail every query later with the driver's bare "Invalid URL". The value is never in the error.
 */
function postgresUrl(text: string, name: EnvName): string {
  if (!URL.canParse(text)) throw new RekeyError('REKEY_ERR_CONFIG', `${name} is not a URL: percent-encode # / ? @ : in its user name and password (# as %23)`);
  return text;
}

function booleanSetting(text: string, name: EnvName): boolean {
  if (text !== 'true' && text !== 'false') throw new RekeyError('REKEY_ERR_CONFIG', `${name} must be true or false`);
  return text === 'true';
}

/** The part of a key Redis Cluster hashes (between the first `{` and the next `}`), when not empty. */
function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : undefined;
}

function optionalSecret(text: string | undefined): SecretValue | undefined {
  return text ? SecretValue.of(text) : undefined;
}

function wholeSeconds(ms: number, name: EnvName): number {
  if (ms % 1000 !== 0 || ms > 86_400_000) throw new RekeyError('REKEY_ERR_CONFIG', `${name} must be whole seconds, at most 24h`);
  return ms;
}

function anchorInterval(text: string): number {
  const ms = requireDuration(text, 'REKEY_AUDIT_ANCHOR_INTERVAL');
  if (ms < 1000 || ms > 3_600_000) throw new RekeyError('REKEY_ERR_CONFIG', 'REKEY_AUDIT_ANCHOR_INTERVAL must be between 1s and 1h: anchors bound how much of the audit log can vanish unseen');
  return ms;
}

/** https, or http to a loopback address (a collector beside rekey); never credentials in the error. */
function anchorWebhook(text: string | undefined): SecretValue | undefined {
  if (!text) return undefined;
  const url = URL.canParse(text) ? new URL(text) : undefined;
  const loopback = url && ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
  if (!url || !(url.protocol === 'https:' || (url.protocol === 'http:' && loopback))) {
    throw new RekeyError('REKEY_ERR_CONFIG', 'REKEY_AUDIT_ANCHOR_WEBHOOK must be an https URL (http only to a loopback address)');
  }
  // As every URL rekey sends to (notifications, webhook targets): never a link-local or cloud metadata address.
  const problem = outboundUrlProblem(url, true);
  if (problem) throw new RekeyError('REKEY_ERR_CONFIG', `REKEY_AUDIT_ANCHOR_WEBHOOK ${problem}`);
  return SecretValue.of(text);
}

function parseTrustProxy(text: string): false | number | string[] {
  if (text === 'false' || text === '') return false;
  if (text === 'true') throw new RekeyError('REKEY_ERR_CONFIG', 'REKEY_TRUST_PROXY=true would believe any client about its own address: give the number of proxies in front of rekey (1 behind one ingress) or their addresses');
  if (/^\d+$/.test(text)) return Number(text);
  return text.split(',').map((part) => part.trim()).filter(Boolean);
}
